//go:build !linux

package ws

import (
	"bytes"
	"errors"
)

// poller is unavailable off Linux: every session reads on its own goroutine.
type poller struct{}

func newPoller() (*poller, error)                 { return nil, errors.New("no epoll") }
func (p *poller) add(*Session) error              { return errors.New("no epoll") }
func (p *poller) remove(*Session)                 {}
func (p *poller) run(<-chan struct{})             {}
func (s *Session) readable([]byte, *bytes.Reader) {}
