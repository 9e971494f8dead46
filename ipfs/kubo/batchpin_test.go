package kubo_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/medprov/medprov/internal/testnet"
)

// TestPutManySurvivesGarbageCollection checks that content stored by
// PutMany is pinned (through its batch node): a full `ipfs repo gc` must not
// remove any of it, and every payload reads back intact.
func TestPutManySurvivesGarbageCollection(t *testing.T) {
	d := testnet.StartKubo(t)
	s := newStore(t, d.API, 30*time.Second)
	ctx := t.Context()
	data := [][]byte{randomBytes(t, 100), randomBytes(t, 300<<10), randomBytes(t, 5000)}
	cids, err := s.PutMany(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+d.API+"/api/v0/repo/gc", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("repo gc: %s", resp.Status)
	}
	for i, c := range cids {
		got, err := s.Get(ctx, c)
		if err != nil {
			t.Fatalf("payload %d (%s) after gc: %v", i, c, err)
		}
		if !bytes.Equal(got, data[i]) {
			t.Errorf("payload %d changed after gc", i)
		}
	}
}
