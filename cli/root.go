// Package cli implements the medprov command-line tool.
//
// Every command that acts on a running gateway goes through package client
// (the gateway's HTTP API), so the CLI holds no ledger logic of its own.
// Flags and the environment (MEDPROV_GATEWAY, MEDPROV_ADMIN_TOKEN) are read
// here and nowhere else; keys live in PEM files the user names.
package cli

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/medprov/medprov/client"
	"github.com/medprov/medprov/envelope"
)

// Exit codes returned by Main and Run.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command ran and failed (refused, unreachable, unexpected outcome)
	ExitUsage   = 2 // bad flags or arguments
)

// Environment variables the CLI reads.
const (
	EnvGateway    = "MEDPROV_GATEWAY"
	EnvAdminToken = "MEDPROV_ADMIN_TOKEN"
)

// DefaultGateway is the gateway URL used when neither --gateway nor
// MEDPROV_GATEWAY is set.
const DefaultGateway = "http://127.0.0.1:8080"

// requestTimeout bounds one HTTP request (a ?wait=commit waits at most 30s
// on the gateway).
const requestTimeout = 60 * time.Second

// Main runs medprov with the process's arguments and environment, stopping
// on SIGINT/SIGTERM, and returns the exit code.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
}

// Run runs medprov with args, writing to stdout and stderr and reading the
// environment through getenv, and returns the exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{getenv: getenv, out: stdout}
	root := newRootCmd(a)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(stderr, "medprov:", err)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		return ExitUsage
	}
	return ExitFailure
}

// usageError marks errors caused by how the command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// isCobraUsage recognises the usage errors cobra returns as plain errors.
func isCobraUsage(err error) bool {
	m := err.Error()
	return strings.HasPrefix(m, "required flag") || strings.HasPrefix(m, "unknown command") ||
		strings.HasPrefix(m, "accepts ") || strings.HasPrefix(m, "unknown flag")
}

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// app holds what every command shares: global flags and output.
type app struct {
	getenv         func(string) string
	out            io.Writer
	gateway        string
	adminTokenFile string
	jsonOut        bool
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "medprov",
		Short: "Provenance ledger for medical IoT data",
		Long: `medprov records signed medical device readings, patient consent and every
access on a permissioned ledger, and keeps the encrypted readings in IPFS.

"medprov serve" runs the gateway. Every other command talks to a running
gateway over its HTTP API: it makes keys, registers actors and devices,
sends signed readings, manages consent, requests data (verifying every
reading locally) and audits the ledger. "medprov demo" walks through all
four roles end to end.

The gateway is --gateway, else $MEDPROV_GATEWAY, else ` + DefaultGateway + `.
Admin commands read the admin token from --admin-token-file, else
$MEDPROV_ADMIN_TOKEN. Private keys are PEM files (PKCS#8 or SEC 1) that
only their owner can read.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	gw := a.getenv(EnvGateway)
	if gw == "" {
		gw = DefaultGateway
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.gateway, "gateway", gw, "gateway base URL (env "+EnvGateway+")")
	pf.StringVar(&a.adminTokenFile, "admin-token-file", "", "file holding the admin token (else env "+EnvAdminToken+")")
	pf.BoolVar(&a.jsonOut, "json", false, "print results as JSON")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	root.AddCommand(
		newKeygenCmd(a),
		newActorCmd(a),
		newRPCmd(a),
		newDeviceCmd(a),
		newReadingCmd(a),
		newConsentCmd(a),
		newPatientCmd(a),
		newAccessCmd(a),
		newAuditCmd(a),
		newDemoCmd(a),
		newServeCmd(a),
		newBenchCmd(a),
		newLedgerCmd(a),
		newBackupCmd(a), newRestoreCmd(a),
	)
	return root
}

// httpClient is the HTTP client every command uses.
func httpClient() *http.Client { return &http.Client{Timeout: requestTimeout} }

// newClient returns a client for the gateway with opts.
func (a *app) newClient(opts ...client.Option) (*client.Client, error) {
	c, err := client.New(a.gateway, append([]client.Option{client.WithHTTPClient(httpClient())}, opts...)...)
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// actorClient returns a client signing as actor id with the key in keyFile.
func (a *app) actorClient(id, keyFile string) (*client.Client, error) {
	if id == "" || keyFile == "" {
		return nil, usagef("the signing actor's id and --key file are required")
	}
	key, err := readPrivateKey(keyFile)
	if err != nil {
		return nil, err
	}
	return a.newClient(client.WithActor(id, key))
}

// adminToken returns the admin token from --admin-token-file or the
// environment.
func (a *app) adminToken() (string, error) {
	if a.adminTokenFile != "" {
		b, err := os.ReadFile(a.adminTokenFile)
		if err != nil {
			return "", fmt.Errorf("admin token: %w", err)
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("admin token file %s is empty", a.adminTokenFile)
	}
	if t := strings.TrimSpace(a.getenv(EnvAdminToken)); t != "" {
		return t, nil
	}
	return "", usagef("no admin token: set %s or pass --admin-token-file", EnvAdminToken)
}

// emit prints v as JSON with --json, else calls text.
func (a *app) emit(v any, text func(w io.Writer)) error {
	if a.jsonOut {
		enc := json.NewEncoder(a.out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	text(a.out)
	return nil
}

// readPrivateKey reads a PEM private key file, refusing one that others
// can read.
func readPrivateKey(path string) (*ecdsa.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("private key %s is readable by others (mode %04o): chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	k, err := envelope.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	return k, nil
}

// readPublicKey reads a PEM public key file and returns the key and the
// PEM text.
func readPublicKey(path string) (*ecdsa.PublicKey, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("public key: %w", err)
	}
	k, err := envelope.ParsePublicKey(b)
	if err != nil {
		return nil, "", fmt.Errorf("public key %s: %w", path, err)
	}
	return k, string(b), nil
}

// parseTime parses an RFC 3339 flag value; empty returns def.
func parseTime(name, v string, def time.Time) (time.Time, error) {
	if v == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, usagef("--%s: want RFC 3339, e.g. 2026-01-02T15:04:05Z: %v", name, err)
	}
	return t, nil
}

// required marks flags as required.
func required(cmd *cobra.Command, names ...string) {
	for _, n := range names {
		if err := cmd.MarkFlagRequired(n); err != nil {
			panic(err) // a programming error: the flag is not defined
		}
	}
}

// collectPages fetches the page pr selects and, with all, follows bookmarks
// to the last page. It returns every item fetched and the bookmark of the
// page after them ("" at the end).
func collectPages[T any](ctx context.Context, pr client.PageRequest, all bool,
	fetch func(context.Context, client.PageRequest) ([]T, string, error)) ([]T, string, error) {
	var items []T
	for {
		got, bookmark, err := fetch(ctx, pr)
		if err != nil {
			return nil, "", err
		}
		items = append(items, got...)
		pr.Bookmark = bookmark
		if !all || bookmark == "" || len(got) == 0 {
			break
		}
	}
	return items, pr.Bookmark, nil
}

// emitPage prints items as a JSON page {items, bookmark, count} with
// --json, else with print and, when more remain, the bookmark to continue
// from.
func emitPage[T any](a *app, items []T, bookmark string, print func(io.Writer, []T)) error {
	page := struct {
		Items    []T    `json:"items"`
		Bookmark string `json:"bookmark"`
		Count    int    `json:"count"`
	}{items, bookmark, len(items)}
	return a.emit(page, func(w io.Writer) {
		print(w, items)
		if bookmark != "" {
			fmt.Fprintf(w, "more: --bookmark %s\n", bookmark)
		}
	})
}
