package chaincode_test

import (
	"encoding/base64"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/medprov/medprov/chaincode"
	"github.com/medprov/medprov/wire"
)

// registryWorld is two operators with devices of three patients, and a
// researcher and a regulator.
type registryWorld struct {
	e                       *env
	op1, op2                *principal
	pat1, pat2, pat3        *principal
	byOp1, byOp2            []string // device ids, in registration order
	ofPat1, ofPat2, ofPat3  []string
	all                     []string
	researcher, regulator   *principal
	actorsByRole            map[string][]string
	firstActor, firstDevice string
}

func newRegistryWorld(t *testing.T, opts ...chaincode.Option) *registryWorld {
	t.Helper()
	cc, err := chaincode.NewChaincode(opts...)
	require.NoError(t, err, "NewChaincode")
	e := newEnvWith(t, cc)
	w := &registryWorld{e: e, actorsByRole: map[string][]string{}}
	w.op1, w.op2 = e.actor(wire.RoleOperator), e.actor(wire.RoleOperator)
	w.pat1, w.pat2, w.pat3 = e.actor(wire.RolePatient), e.actor(wire.RolePatient), e.actor(wire.RolePatient)
	w.researcher, w.regulator = e.actor(wire.RoleResearcher), e.actor(wire.RoleRegulator)
	for _, p := range []*principal{w.op1, w.op2, w.pat1, w.pat2, w.pat3, w.researcher, w.regulator} {
		w.actorsByRole[p.role] = append(w.actorsByRole[p.role], p.id)
	}
	// op1 registers two devices of pat1 and one of pat2; op2 one of pat2
	// and two of pat3.
	for _, d := range []struct {
		op, pat *principal
	}{{w.op1, w.pat1}, {w.op2, w.pat2}, {w.op1, w.pat1}, {w.op2, w.pat3}, {w.op1, w.pat2}, {w.op2, w.pat3}} {
		id := e.device(d.op, d.pat).id
		w.all = append(w.all, id)
		switch d.op {
		case w.op1:
			w.byOp1 = append(w.byOp1, id)
		default:
			w.byOp2 = append(w.byOp2, id)
		}
		switch d.pat {
		case w.pat1:
			w.ofPat1 = append(w.ofPat1, id)
		case w.pat2:
			w.ofPat2 = append(w.ofPat2, id)
		default:
			w.ofPat3 = append(w.ofPat3, id)
		}
	}
	return w
}

// listDevices collects every page of a device listing and the number of
// pages it took.
func (w *registryWorld) listDevices(t *testing.T, operatorID, patientID string, pageSize int) ([]string, int) {
	t.Helper()
	var ids []string
	bookmark := ""
	for pages := 1; pages <= 100; pages++ {
		var page wire.DevicePage
		w.e.mustEvaluate(&page, wire.FnListDevices, operatorID, patientID, strconv.Itoa(pageSize), bookmark)
		require.LessOrEqual(t, len(page.Items), pageSize, "page %d holds more than the page size", pages)
		require.Len(t, page.Items, page.Count, "count of page %d", pages)
		for _, d := range page.Items {
			assert.True(t, (operatorID == "" || d.OperatorID == operatorID) && (patientID == "" || d.PatientID == patientID),
				"device %+v does not match the filter", d)
			ids = append(ids, d.ID)
		}
		if page.Bookmark == "" {
			return ids, pages
		}
		bookmark = page.Bookmark
	}
	require.Fail(t, "device listing did not end within 100 pages")
	return nil, 0
}

// sorted returns ids in key order: composite keys end each attribute with
// a 0 byte, so their order is the ids' string order. nil stays nil.
func sorted(ids []string) []string {
	if ids == nil {
		return nil
	}
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

func TestListDevices(t *testing.T) {
	w := newRegistryWorld(t)
	tests := []struct {
		name              string
		operator, patient string
		want              []string
	}{
		{"no filter lists every device", "", "", w.all},
		{"an operator filter lists that operator's devices", w.op1.id, "", w.byOp1},
		{"a patient filter lists that patient's devices", "", w.pat3.id, w.ofPat3},
		{"both filters must match", w.op1.id, w.pat2.id, []string{w.byOp1[2]}},
		{"an operator without devices lists none", w.researcher.id, "", nil},
		{"an unknown patient lists none", "", "nobody", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{1, 2, 100} {
				got, _ := w.listDevices(t, tt.operator, tt.patient, size)
				assert.Equal(t, sorted(tt.want), got, "devices in id order, page size %d", size)
			}
		})
	}

	t.Run("a page that fills up continues with a bookmark", func(t *testing.T) {
		var page wire.DevicePage
		w.e.mustEvaluate(&page, wire.FnListDevices, "", "", "2", "")
		assert.Equal(t, 2, page.Count, "count")
		assert.NotEmpty(t, page.Bookmark, "bookmark")
		var last wire.DevicePage
		w.e.mustEvaluate(&last, wire.FnListDevices, "", "", strconv.Itoa(len(w.all)), "")
		assert.Len(t, last.Items, len(w.all), "one page holds every device")
		assert.Empty(t, last.Bookmark, "a page that ends the list has no bookmark")
	})

	t.Run("malformed arguments are invalid", func(t *testing.T) {
		var actors wire.ActorPage
		w.e.mustEvaluate(&actors, wire.FnListActors, "", "1", "")
		require.NotEmpty(t, actors.Bookmark, "an actor bookmark")
		tests := []struct {
			name string
			args []string
		}{
			{"a malformed operator id", []string{"bad id", "", "", ""}},
			{"a malformed patient id", []string{"", "bad/id", "", ""}},
			{"a page size of 0", []string{"", "", "0", ""}},
			{"a page size above the maximum", []string{"", "", strconv.Itoa(wire.MaxPageSize + 1), ""}},
			{"a bookmark that is not base64url", []string{"", "", "", "!!"}},
			{"a bookmark of the actor registry", []string{"", "", "", actors.Bookmark}},
			{"a bookmark that is not UTF-8", []string{"", "", "", base64.RawURLEncoding.EncodeToString([]byte("\x00device\x00\xff"))}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := w.e.evaluate(wire.FnListDevices, tt.args...)
				assert.Equal(t, wire.CodeInvalid, refusalCode(t, err))
			})
		}
	})
}

func TestListDevicesScanBound(t *testing.T) {
	// Each call examines at most 2 device records: pages may be short, even
	// empty, yet following the bookmarks lists exactly the matches.
	w := newRegistryWorld(t, chaincode.WithRegistryScan(2))
	tests := []struct {
		name              string
		operator, patient string
		want              []string
	}{
		{"every device", "", "", w.all},
		{"a rare patient", "", w.pat1.id, w.ofPat1},
		{"an operator", w.op2.id, "", w.byOp2},
		{"no match", "", "nobody", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, pages := w.listDevices(t, tt.operator, tt.patient, 100)
			assert.Equal(t, sorted(tt.want), got, "devices in id order")
			assert.GreaterOrEqual(t, pages, len(w.all)/2, "pages: each examines at most 2 records")
		})
	}
}

func TestListActors(t *testing.T) {
	w := newRegistryWorld(t)
	collect := func(t *testing.T, role string, pageSize int) []wire.Actor {
		t.Helper()
		var out []wire.Actor
		bookmark := ""
		for range 100 {
			var page wire.ActorPage
			w.e.mustEvaluate(&page, wire.FnListActors, role, strconv.Itoa(pageSize), bookmark)
			require.Len(t, page.Items, page.Count, "count")
			out = append(out, page.Items...)
			if page.Bookmark == "" {
				return out
			}
			bookmark = page.Bookmark
		}
		require.Fail(t, "actor listing did not end within 100 pages")
		return nil
	}
	var everyone []string
	for _, ids := range w.actorsByRole {
		everyone = append(everyone, ids...)
	}
	tests := []struct {
		name string
		role string
		want []string
	}{
		{"no role lists every actor", "", everyone},
		{"patients", wire.RolePatient, w.actorsByRole[wire.RolePatient]},
		{"operators", wire.RoleOperator, w.actorsByRole[wire.RoleOperator]},
		{"regulators", wire.RoleRegulator, w.actorsByRole[wire.RoleRegulator]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{1, 3, 100} {
				var got []string
				for _, a := range collect(t, tt.role, size) {
					assert.True(t, tt.role == "" || a.Role == tt.role, "actor %s has role %s", a.ID, a.Role)
					got = append(got, a.ID)
				}
				assert.Equal(t, sorted(tt.want), got, "actors in id order, page size %d", size)
			}
		})
	}
	t.Run("an unknown role is invalid", func(t *testing.T) {
		_, err := w.e.evaluate(wire.FnListActors, "surgeon", "", "")
		assert.Equal(t, wire.CodeInvalid, refusalCode(t, err))
	})
}

func TestGetDeviceStats(t *testing.T) {
	// One device with readings recorded out of seq order, from seq 0 to
	// MaxSeq; a neighbour device with readings of its own; a device with
	// none.
	seqs := []uint64{7, 0, wire.MaxSeq, 3, 12}
	setup := func(t *testing.T, opts ...chaincode.Option) (*env, *principal, *principal, wire.Reading) {
		t.Helper()
		cc, err := chaincode.NewChaincode(opts...)
		require.NoError(t, err, "NewChaincode")
		e := newEnvWith(t, cc)
		e.clock.Step(time.Millisecond)
		op, pat := e.actor(wire.RoleOperator), e.actor(wire.RolePatient)
		dev, neighbour, idle := e.device(op, pat), e.device(op, pat), e.device(op, pat)
		for i, seq := range seqs {
			res, _ := e.record(reading(t, dev, seq, "spo2", t0.Add(-time.Duration(i)*time.Minute)))
			require.Equal(t, 1, res.Recorded, "reading %d recorded: %+v", seq, res.Results)
		}
		res, _ := e.record(reading(t, neighbour, 100, "spo2", t0), reading(t, neighbour, 101, "spo2", t0))
		require.Equal(t, 2, res.Recorded, "neighbour readings recorded: %+v", res.Results)
		var last wire.Reading
		e.mustEvaluate(&last, wire.FnGetReading, wire.ReadingID(dev.id, wire.MaxSeq))
		return e, dev, idle, last
	}

	tests := []struct {
		name       string
		cap        int // 0: the default
		wantCount  int
		wantCapped bool
	}{
		{"the default cap counts every reading", 0, len(seqs), false},
		{"a cap equal to the count is exact", len(seqs), len(seqs), false},
		{"a cap below the count reports the cap", len(seqs) - 1, len(seqs) - 1, true},
		{"a cap of one reports one", 1, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, dev, _, last := setup(t, chaincode.WithDeviceStatsScan(tt.cap))
			var got wire.DeviceStats
			e.mustEvaluate(&got, wire.FnGetDeviceStats, dev.id)
			assert.Equal(t, dev.id, got.DeviceID, "deviceId")
			assert.Equal(t, [2]any{tt.wantCount, tt.wantCapped}, [2]any{got.Readings, got.ReadingsCapped}, "readings and capped")
			want := &wire.LastReading{ReadingID: last.ID, Seq: wire.MaxSeq, MeasuredAt: last.MeasuredAt, TxID: last.TxID, TxTime: last.TxTime}
			assert.Equal(t, want, got.LastReading, "the reading with the highest seq, whatever the cap")
		})
	}

	t.Run("the last reading of a capped scan is found anywhere in the seq space", func(t *testing.T) {
		cc, err := chaincode.NewChaincode(chaincode.WithDeviceStatsScan(1))
		require.NoError(t, err, "NewChaincode")
		e := newEnvWith(t, cc)
		op, pat := e.actor(wire.RoleOperator), e.actor(wire.RolePatient)
		for _, top := range []uint64{1, 2, 1 << 20, wire.MaxSeq - 1} {
			dev := e.device(op, pat)
			res, _ := e.record(reading(t, dev, 0, "spo2", t0), reading(t, dev, top, "spo2", t0))
			require.Equal(t, 2, res.Recorded, "readings recorded: %+v", res.Results)
			var got wire.DeviceStats
			e.mustEvaluate(&got, wire.FnGetDeviceStats, dev.id)
			if assert.NotNil(t, got.LastReading, "last reading of %s", dev.id) {
				assert.Equal(t, top, got.LastReading.Seq, "last seq")
			}
		}
	})

	e, _, idle, _ := setup(t)
	t.Run("a device without readings has none and no last reading", func(t *testing.T) {
		var got wire.DeviceStats
		e.mustEvaluate(&got, wire.FnGetDeviceStats, idle.id)
		assert.Equal(t, wire.DeviceStats{DeviceID: idle.id}, got)
	})
	t.Run("refusals", func(t *testing.T) {
		tests := []struct {
			name string
			id   string
			want wire.Code
		}{
			{"an unknown device is not found", "nobody", wire.CodeNotFound},
			{"a malformed device id is invalid", "bad id", wire.CodeInvalid},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := e.evaluate(wire.FnGetDeviceStats, tt.id)
				assert.Equal(t, tt.want, refusalCode(t, err))
			})
		}
	})
}
