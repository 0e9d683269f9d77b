package backend

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/pushpull/pushpull/internal/httpjson"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/sdk"
)

// Limits on what one request may name.
const (
	maxIDLen     = 128
	maxTagLen    = 256
	maxUsers     = 100000
	maxTags      = 1000
	maxBatch     = 1000
	maxTTLSecond = 1 << 31
)

// ServeHTTP serves the backend API under any prefix: the last path
// element names the call (config, publish, watch, watch/extend, unwatch,
// online, public, command; push/subscribe, push/unsubscribe, push/send,
// push/cancel, push/key for Web Push). Every call is a POST of a JSON object,
// authenticated with "Authorization: Bearer <backend key>", and answers
// JSON. Without a backend key every path answers 404.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.Enabled() {
		writeError(w, http.StatusNotFound, "the backend API is disabled (security.backendKey)")
		return
	}
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pushpull"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong backend key")
		return
	}
	var call func(ctx context.Context, body []byte) (any, error)
	path := r.URL.Path
	switch {
	case strings.HasSuffix(path, "/push/send"):
		call = s.httpPushSend
	case strings.HasSuffix(path, "/push/subscribe"):
		call = s.httpPushSubscribe
	case strings.HasSuffix(path, "/push/unsubscribe"):
		call = s.httpPushUnsubscribe
	case strings.HasSuffix(path, "/push/cancel"):
		call = s.httpPushCancel
	case strings.HasSuffix(path, "/push/key"):
		call = s.httpPushKey
	case strings.HasSuffix(path, "/watch/extend"):
		call = s.httpExtend
	case strings.HasSuffix(path, "/config"):
		call = s.httpConfig
	case strings.HasSuffix(path, "/publish"):
		call = s.httpPublish
	case strings.HasSuffix(path, "/watch"):
		call = s.httpWatch
	case strings.HasSuffix(path, "/unwatch"):
		call = s.httpUnwatch
	case strings.HasSuffix(path, "/online"):
		call = s.httpOnline
	case strings.HasSuffix(path, "/public"):
		call = s.httpPublic
	case strings.HasSuffix(path, "/command"):
		call = s.httpCommand
	default:
		writeError(w, http.StatusNotFound, "no such call")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	// The body must come whole in time: a client trickling it would hold
	// its descriptor for ever.
	lim := s.live.Load()
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(lim.bodyTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(lim.maxBody)))
	if err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusRequestTimeout, "request body not sent in time")
			return
		}
		writeError(w, http.StatusBadRequest, "cannot read the request body")
		return
	}
	res, err := call(r.Context(), body)
	var bad badRequest
	switch {
	case errors.As(err, &bad):
		writeError(w, http.StatusBadRequest, bad.Error())
	case errors.Is(err, ErrQueueFull):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case err != nil:
		s.o.Log.Warn("backend call failed", "path", path, "err", err)
		writeError(w, http.StatusServiceUnavailable, "storage unavailable")
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

// authorized reports whether r carries the backend key as a bearer token.
// The scheme is case-insensitive (RFC 9110 section 11.1).
func (s *Service) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	return ok && strings.EqualFold(scheme, "Bearer") &&
		subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(s.o.Key)) == 1
}

type badRequest struct{ msg string }

func (b badRequest) Error() string { return b.msg }

func badf(format string, args ...any) error { return badRequest{fmt.Sprintf(format, args...)} }

// writeJSON answers v as JSON with status code.
func writeJSON(w http.ResponseWriter, code int, v any) { httpjson.Write(w, code, v) }

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// decode reads body into v strictly: one JSON object, no unknown keys.
func decode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badf("bad JSON: %v", err)
	}
	if dec.More() {
		return badf("bad JSON: data after the object")
	}
	return nil
}

// ID is a user id, given as a JSON string or number.
type ID string

// UnmarshalJSON accepts "12" and 12.
func (id *ID) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*id = ID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("a user id must be a string or a number")
	}
	*id = ID(n.String())
	return nil
}

func checkID(id ID) (string, error) {
	s := string(id)
	if s == "" || len(s) > maxIDLen || strings.ContainsFunc(s, badRune) {
		return "", badf("user id %q: want 1-%d printable characters without spaces", s, maxIDLen)
	}
	return s, nil
}

func badRune(r rune) bool { return r <= ' ' || r == 0x7f || r == '|' }

func checkIDs(ids []ID, max int) ([]string, error) {
	if len(ids) > max {
		return nil, badf("at most %d users per request", max)
	}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		s, err := checkID(id)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return protocol.UniqueIDs(out), nil
}

func checkTags(tags []string) ([]string, error) {
	if len(tags) > maxTags {
		return nil, badf("at most %d tags per request", maxTags)
	}
	for _, t := range tags {
		if t == "" || len(t) > maxTagLen || strings.ContainsFunc(t, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return nil, badf("tag %q: want 1-%d printable characters", t, maxTagLen)
		}
	}
	return protocol.UniqueIDs(append([]string(nil), tags...)), nil
}

func ttlOf(seconds float64) (time.Duration, error) {
	if seconds < 0 || seconds > maxTTLSecond || seconds != seconds {
		return 0, badf("ttl must be between 0 and %d seconds", maxTTLSecond)
	}
	return time.Duration(seconds * float64(time.Second)), nil
}

type userRequest struct {
	UserID ID `json:"userId"`
}

func (s *Service) httpConfig(ctx context.Context, body []byte) (any, error) {
	var req userRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	user, err := checkID(req.UserID)
	if err != nil {
		return nil, err
	}
	return s.Config(ctx, user)
}

// PublishRequest is one publish of the publish call: the target and the
// message, with an optional lifetime in seconds. It is sdk.Publish as the
// server reads it: user ids may be numbers, and the message stays raw.
type PublishRequest struct {
	Users    []ID     `json:"users,omitempty"`
	Channels []string `json:"channels,omitempty"`
	Tags     []string `json:"tags,omitempty"`
	Shared   bool     `json:"shared,omitempty"`
	Message  Message  `json:"message"`
	Expiry   uint32   `json:"expiry,omitempty"`
	// NotifyOffline also sends this notification through Web Push to the
	// users (and tag watchers) it reaches, decided for each as push/send
	// does: those connected are skipped. Its USER_ID is not given.
	NotifyOffline *AddQueueRequest `json:"notifyOffline,omitempty"`
}

// publishBatch is the publish call's body: one request, or several under
// "batch".
type publishBatch struct {
	PublishRequest
	Batch []PublishRequest `json:"batch,omitempty"`
}

func (s *Service) httpPublish(ctx context.Context, body []byte) (any, error) {
	var req publishBatch
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	reqs := req.Batch
	if len(reqs) == 0 {
		reqs = []PublishRequest{req.PublishRequest}
	} else if req.Message.ModuleID != "" || len(req.Users)+len(req.Channels)+len(req.Tags) > 0 || req.Shared {
		return nil, badf("give either one publish or a batch, not both")
	}
	if len(reqs) > maxBatch {
		return nil, badf("at most %d publishes per batch", maxBatch)
	}
	type checked struct {
		t Target
		m Message
		e uint32
		n *Notification
	}
	all := make([]checked, len(reqs))
	for i, r := range reqs {
		t, err := s.checkTarget(r.Users, r.Channels, r.Tags, r.Shared)
		if err != nil {
			return nil, err
		}
		if err := checkMessage(r.Message); err != nil {
			return nil, err
		}
		all[i] = checked{t: t, m: r.Message, e: r.Expiry}
		if r.NotifyOffline != nil {
			if s.push == nil {
				return nil, errPushOff
			}
			if len(r.NotifyOffline.UserID) > 0 {
				return nil, badf("notifyOffline: its receivers are the publish's; give no USER_ID")
			}
			n, err := r.NotifyOffline.notification([]string{})
			if err != nil {
				return nil, badf("notifyOffline: %v", err)
			}
			if _, _, err := n.payloads(s.o.Now()); err != nil {
				return nil, err
			}
			all[i].n = &n
		}
	}
	out := make([]sdk.Published, len(all))
	for i, c := range all {
		p, err := s.Publish(ctx, c.t, c.m, c.e)
		if err != nil {
			return nil, err
		}
		if c.n != nil {
			if c.n.Users, err = s.targetUsers(ctx, c.t); err != nil {
				return nil, err
			}
			q, err := s.AddQueue(ctx, *c.n)
			if err != nil {
				return nil, err
			}
			p.Push = &sdk.PushQueued{Queued: q.Queued}
		}
		out[i] = p
	}
	return map[string]any{"published": out}, nil
}

func (s *Service) checkTarget(users []ID, channels, tags []string, shared bool) (Target, error) {
	var t Target
	var err error
	if t.Users, err = checkIDs(users, maxUsers); err != nil {
		return t, err
	}
	if t.Tags, err = checkTags(tags); err != nil {
		return t, err
	}
	if len(channels) > 0 {
		if t.Channels, err = s.signer().ParseIDList(strings.Join(channels, "/"), false); err != nil {
			return t, badf("channels: %v", err)
		}
	}
	t.Shared = shared
	if len(t.Users)+len(t.Channels)+len(t.Tags) == 0 && !shared {
		return t, badf("no receivers: give users, channels, tags or shared")
	}
	return t, nil
}

func checkMessage(m Message) error {
	if m.ModuleID == "" || m.Command == "" {
		return badf("message needs module_id and command")
	}
	for name, raw := range map[string]json.RawMessage{"params": m.Params, "extra": m.Extra} {
		if len(raw) > 0 && string(raw) != "null" && !protocol.IsJSONObject(raw) {
			return badf("message %s must be an object", name)
		}
	}
	return nil
}

type watchRequest struct {
	UserID ID       `json:"userId"`
	Tags   []string `json:"tags"`
	TTL    float64  `json:"ttl,omitempty"`
}

func (r watchRequest) check() (string, []string, time.Duration, error) {
	user, err := checkID(r.UserID)
	if err != nil {
		return "", nil, 0, err
	}
	tags, err := checkTags(r.Tags)
	if err != nil {
		return "", nil, 0, err
	}
	if len(tags) == 0 {
		return "", nil, 0, badf("no tags")
	}
	ttl, err := ttlOf(r.TTL)
	return user, tags, ttl, err
}

func (s *Service) httpWatch(ctx context.Context, body []byte) (any, error) {
	var req watchRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	user, tags, ttl, err := req.check()
	if err != nil {
		return nil, err
	}
	until, err := s.Watch(ctx, user, tags, ttl)
	if err != nil {
		return nil, err
	}
	return sdk.Watched{Tags: tags, Expires: until.Unix()}, nil
}

func (s *Service) httpExtend(ctx context.Context, body []byte) (any, error) {
	var req watchRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	user, tags, ttl, err := req.check()
	if err != nil {
		return nil, err
	}
	extended, unknown, err := s.Extend(ctx, user, tags, ttl)
	if err != nil {
		return nil, err
	}
	return sdk.Extended{Extended: extended, Unknown: unknown}, nil
}

func (s *Service) httpUnwatch(ctx context.Context, body []byte) (any, error) {
	var req watchRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	user, tags, _, err := req.check()
	if err != nil {
		return nil, err
	}
	return map[string]any{"tags": tags}, s.Unwatch(ctx, user, tags)
}

type usersRequest struct {
	Users []ID `json:"users"`
}

// decodeUsers reads a {"users": [...]} request.
func decodeUsers(body []byte) ([]string, error) {
	var req usersRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	return checkIDs(req.Users, maxUsers)
}

func (s *Service) httpOnline(ctx context.Context, body []byte) (any, error) {
	users, err := decodeUsers(body)
	if err != nil {
		return nil, err
	}
	st, err := s.Online(ctx, users)
	if err != nil {
		return nil, err
	}
	return map[string]any{"users": st}, nil
}

func (s *Service) httpPublic(ctx context.Context, body []byte) (any, error) {
	users, err := decodeUsers(body)
	if err != nil {
		return nil, err
	}
	pc, err := s.PublicChannels(ctx, users)
	if err != nil {
		return nil, err
	}
	return map[string]any{"channels": pc}, nil
}

type commandRequest struct {
	Users   []ID   `json:"users,omitempty"`
	Shared  bool   `json:"shared,omitempty"`
	Command string `json:"command"`
}

func (s *Service) httpCommand(ctx context.Context, body []byte) (any, error) {
	var req commandRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if req.Command != sdk.ConfigExpire && req.Command != sdk.ServerRestart {
		return nil, badf("command must be config_expire or server_restart")
	}
	t, err := s.checkTarget(req.Users, nil, nil, req.Shared)
	if err != nil {
		return nil, err
	}
	p, err := s.Command(ctx, t, req.Command)
	if err != nil {
		return nil, err
	}
	return map[string]any{"published": []sdk.Published{p}}, nil
}
