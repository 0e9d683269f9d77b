package store

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pushpull/pushpull/internal/snapshotfile"
	"github.com/pushpull/pushpull/protocol"
)

// A snapshot is the memory store written to a file at a graceful stop and
// read back at the next start, so that restarting a single-process server
// loses no history: clients that reconnect with their mid get what they
// missed, and new ids continue the old sequence. It is JSON lines: a
// header, then every live message, oldest first.
type snapshotHeader struct {
	Version  int    `json:"version"`
	Start    int64  `json:"start"`
	Counter  uint64 `json:"counter"`
	Messages int    `json:"messages"`
	// Channels maps each channel index to when it expires, so a channel
	// keeps the lifetime it had.
	Channels map[string]time.Time `json:"channels"`
}

const snapshotVersion = 1

// WriteSnapshot writes every live message to w.
func (s *Memory) WriteSnapshot(w io.Writer) error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	live := make([]*protocol.Message, 0, len(s.expiry))
	for _, e := range s.expiry {
		if !e.m.Expired(now) {
			live = append(live, e.m)
		}
	}
	live = sortUnique(live)
	hdr := snapshotHeader{Version: snapshotVersion, Start: s.start, Counter: s.counter,
		Messages: len(live), Channels: make(map[string]time.Time, len(s.channels))}
	for c, h := range s.channels {
		hdr.Channels[c] = h.expires
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(hdr); err != nil {
		return err
	}
	for _, m := range live {
		if err := enc.Encode(m); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ReadSnapshot loads what WriteSnapshot wrote into an empty store: the
// start time and counter, and every message still live.
func (s *Memory) ReadSnapshot(r io.Reader) error {
	dec := json.NewDecoder(bufio.NewReader(r))
	var hdr snapshotHeader
	if err := dec.Decode(&hdr); err != nil {
		return fmt.Errorf("snapshot header: %w", err)
	}
	if hdr.Version != snapshotVersion {
		return fmt.Errorf("snapshot version %d, want %d", hdr.Version, snapshotVersion)
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counter != 0 || len(s.channels) != 0 {
		return errors.New("snapshot: the store is not empty")
	}
	s.start, s.counter = hdr.Start, hdr.Counter
	for i := 0; i < hdr.Messages; i++ {
		m := new(protocol.Message)
		if err := dec.Decode(m); err != nil {
			return fmt.Errorf("snapshot message %d: %w", i+1, err)
		}
		if m.Expired(now) || m.ID > s.counter {
			continue
		}
		s.keep(m, func(c string) *history {
			h := s.channels[c]
			if h == nil {
				exp, ok := hdr.Channels[c]
				if !ok || !now.Before(exp) {
					return nil
				}
				h = &history{expires: exp}
				s.channels[c] = h
			}
			return h
		})
	}
	return nil
}

// SaveSnapshot writes the snapshot to path atomically.
func (s *Memory) SaveSnapshot(path string) error {
	return snapshotfile.Save(path, s.WriteSnapshot)
}

// LoadSnapshot reads the snapshot at path, if there is one, and removes
// it: a snapshot is used once. The store goes on with the snapshot's ids;
// were the file left in place, a crash later (which writes no snapshot)
// would bring those ids back at the next start and issue them again.
func (s *Memory) LoadSnapshot(path string) (loaded bool, err error) {
	return snapshotfile.Load(path, s.ReadSnapshot)
}
