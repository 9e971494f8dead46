package cli

import (
	"fmt"
	"io"

	"github.com/medprov/medprov/wire"

	"github.com/spf13/cobra"

	"github.com/medprov/medprov/client"
)

func newDeviceCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "device",
		Short: "Register, revoke and simulate devices (operator)",
		Long: `Devices are registered by a device operator to a patient's pseudonym with
the device's public key. The ledger accepts a reading only if it is signed by
an active registered device; revoking a device makes the ledger refuse its
later readings. "device simulate" drives load through the gateway.`,
	}
	cmd.AddCommand(newDeviceRegisterCmd(a), newDeviceRevokeCmd(a), newDeviceSimulateCmd(a))
	return cmd
}

func newDeviceRegisterCmd(a *app) *cobra.Command {
	var op, key, dev, patient, typ, devPub string
	cmd := &cobra.Command{
		Use:   "register --operator ID --key OPKEY --device ID --patient ID --type T --device-pubkey FILE",
		Short: "Register a device to a patient, signed by the operator",
		Long: `register signs a device.register action with the operator's key and sends it
to the gateway. The ledger checks that the operator is an active operator and
the patient an active patient, then records the device with its public key.
It prints the device record and the transaction id.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, pem, err := readPublicKey(devPub)
			if err != nil {
				return err
			}
			c, err := a.actorClient(op, key)
			if err != nil {
				return err
			}
			d, err := c.RegisterDevice(cmd.Context(), client.DeviceRegistration{DeviceID: dev, PatientID: patient, DeviceType: typ, PublicKey: pem})
			if err != nil {
				return fmt.Errorf("register device %s: %w", dev, err)
			}
			return a.emit(d, func(w io.Writer) { printDevice(w, d) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&op, "operator", "", "operator actor id (the signer)")
	f.StringVar(&key, "key", "", "operator private key file")
	f.StringVar(&dev, "device", "", "device id (no ':')")
	f.StringVar(&patient, "patient", "", "patient actor id the device measures")
	f.StringVar(&typ, "type", "", "device type, e.g. ecg or pulse-oximeter")
	f.StringVar(&devPub, "device-pubkey", "", "the device's public key file (PEM)")
	required(cmd, "operator", "key", "device", "patient", "type", "device-pubkey")
	return cmd
}

func newDeviceRevokeCmd(a *app) *cobra.Command {
	var op, key, dev string
	cmd := &cobra.Command{
		Use:   "revoke --operator ID --key OPKEY --device ID",
		Short: "Revoke a device's key, signed by its operator",
		Long: `revoke signs a device.revoke action with the operator's key. Only the operator
that registered the device may revoke it. From the revocation's block on, the
ledger refuses readings signed by that device; readings recorded before stay
valid and verifiable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.actorClient(op, key)
			if err != nil {
				return err
			}
			d, err := c.RevokeDevice(cmd.Context(), dev)
			if err != nil {
				return fmt.Errorf("revoke device %s: %w", dev, err)
			}
			return a.emit(d, func(w io.Writer) { printDevice(w, d) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&op, "operator", "", "operator actor id (the signer)")
	f.StringVar(&key, "key", "", "operator private key file")
	f.StringVar(&dev, "device", "", "device id")
	required(cmd, "operator", "key", "device")
	return cmd
}

func printDevice(w io.Writer, d *wire.Device) {
	fmt.Fprintf(w, "device %s  patient %s  operator %s  type %s  status %s\n", d.ID, d.PatientID, d.OperatorID, d.DeviceType, d.Status)
	fmt.Fprintf(w, "  registered tx %s", d.RegisteredTx)
	if d.RevokedTx != "" {
		fmt.Fprintf(w, "  revoked tx %s", d.RevokedTx)
	}
	fmt.Fprintln(w)
}
