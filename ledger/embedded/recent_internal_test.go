package embedded

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRecentWrites(t *testing.T) {
	r := newRecentWrites(10)
	r.add(10, []string{"a", "b"})
	r.add(11, []string{"b"})
	r.add(12, []string{"c"})
	tests := []struct {
		name   string
		key    string
		height uint64
		want   bool
	}{
		{"written in the snapshot's first later block", "a", 10, true},
		{"written only before the snapshot", "a", 11, false},
		{"rewritten after the snapshot", "b", 11, true},
		{"written by the last block", "c", 12, true},
		{"snapshot after every write", "c", 13, false},
		{"never written", "z", 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.True(t, r.covers(tt.height), "window from 10 covers a snapshot at %d", tt.height)
			assert.Equal(t, tt.want, r.writtenSince(tt.key, tt.height))
		})
	}
	assert.False(t, r.covers(9), "a snapshot before the window began")
}

func TestRecentWritesSlides(t *testing.T) {
	r := newRecentWrites(0)
	for n := range uint64(recentBlocks + 5) {
		r.add(n, []string{"k" + strconv.FormatUint(n, 10), "shared"})
	}
	assert.False(t, r.covers(4), "blocks that left the window")
	assert.True(t, r.covers(5), "the oldest block still in the window")
	assert.False(t, r.writtenSince("k4", 0), "keys of blocks that left the window are forgotten")
	assert.True(t, r.writtenSince("shared", recentBlocks+4), "a key every block writes")
	assert.Len(t, r.keys, recentBlocks, "the window holds recentBlocks blocks")

	r.add(1000, []string{"x"}) // out of order: the window starts anew
	assert.False(t, r.covers(999), "a gap restarts the window")
	assert.True(t, r.writtenSince("x", 1000), "the new window holds the block")
	assert.False(t, r.writtenSince("shared", 0), "the old window is gone")
}
