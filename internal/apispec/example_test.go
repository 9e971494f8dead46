package apispec_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/medprov/medprov/internal/apispec"
)

// ExampleSpec_Validate checks recorded exchanges against the gateway's
// OpenAPI document. In a test, NewTransport (for a client) or NewHandler
// (in front of the gateway) checks every exchange the same way.
func ExampleSpec_Validate() {
	ctx := context.Background()
	spec, err := apispec.Gateway(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	health := func(body string) *http.Response {
		rec := httptest.NewRecorder()
		rec.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = io.WriteString(rec, body)
		return rec.Result()
	}
	req := httptest.NewRequest(http.MethodGet, "/healthz", nil)

	fmt.Println(spec.Validate(ctx, req, nil, health(`{"status":"ok"}`)))

	err = spec.Validate(ctx, req, nil, health(`{"status":"fine"}`))
	var m *apispec.Mismatch
	if errors.As(err, &m) {
		fmt.Println(m.Method, m.Target, m.Status, m.Operation, errors.Is(err, apispec.ErrResponse))
	}
	// Output:
	// <nil>
	// GET /healthz 200 getHealth true
}
