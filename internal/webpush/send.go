package webpush

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Urgency values (RFC 8030 section 5.3).
const (
	UrgencyNormal = "normal"
	UrgencyHigh   = "high"
)

// Options are the RFC 8030 headers of one push message.
type Options struct {
	TTL     time.Duration // how long the push service keeps it for an offline browser (whole seconds)
	Urgency string        // "" for normal
	Topic   string        // a newer message with the same topic replaces a pending older one; see Topic
}

// Topic derives an RFC 8030 topic from an application's tag of any
// length: the topic must be at most 32 characters of the URL-safe
// base64 alphabet, so the tag is hashed (SHA-256, the first 24 bytes,
// base64url: 32 characters). "" gives "".
func Topic(tag string) string {
	if tag == "" {
		return ""
	}
	h := sha256.Sum256([]byte(tag))
	return b64.EncodeToString(h[:24])
}

// Result is what the push service answered.
type Result struct {
	Status int
	// RetryAfter is the Retry-After the push service asked for (0: none).
	RetryAfter time.Duration
	Body       string // the start of the answer's body, for logs
}

// Delivered reports whether the push service accepted the message.
func (r Result) Delivered() bool { return r.Status >= 200 && r.Status < 300 }

// Gone reports whether the subscription no longer exists (404, 410):
// it must be forgotten.
func (r Result) Gone() bool { return r.Status == http.StatusNotFound || r.Status == http.StatusGone }

// Retryable reports whether the same message may succeed later: the push
// service is overloaded (429) or failing (5xx).
func (r Result) Retryable() bool { return r.Status == http.StatusTooManyRequests || r.Status >= 500 }

// Sender sends push messages with one VAPID identity.
type Sender struct {
	VAPID  *VAPID
	Client *http.Client // nil: NewClient(false)
	Now    func() time.Time
}

var defaultClient = NewClient(false)

// Send encrypts payload for k and posts it to k's endpoint. An error is a
// failure to reach the push service (or a payload too large); an answer,
// whatever its status, is a Result.
func (s *Sender) Send(ctx context.Context, k *Keys, payload []byte, o Options) (Result, error) {
	body, err := Encrypt(k, payload)
	if err != nil {
		return Result{}, err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	auth, err := s.VAPID.Authorization(k.Endpoint, now())
	if err != nil {
		return Result{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, k.Endpoint.String(), bytes.NewReader(body))
	if err != nil {
		return Result{}, err
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Encoding", "aes128gcm")
	req.Header.Set("Content-Type", "application/octet-stream")
	ttl := max(o.TTL, 0) / time.Second
	req.Header.Set("TTL", strconv.FormatInt(int64(ttl), 10))
	if o.Urgency != "" {
		req.Header.Set("Urgency", o.Urgency)
	}
	if o.Topic != "" {
		req.Header.Set("Topic", o.Topic)
	}
	c := s.Client
	if c == nil {
		c = defaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return Result{}, err
	}
	defer resp.Body.Close()
	start, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	return Result{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), now()), Body: string(start)}, nil
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// String describes r for logs.
func (r Result) String() string {
	return fmt.Sprintf("%d %s", r.Status, http.StatusText(r.Status))
}
