// Package sdk is a client for pushpull's backend API: the calls a web
// application makes to hand its users their client config, publish to them
// by user id, channel or watch tag, and learn who is online. It also
// publishes on the original text publish route and reads the process
// statistics, the routes the Bitrix pull module uses.
//
// Every call takes a context and is safe for concurrent use. A call the
// server refuses returns an *Error carrying the HTTP status and the
// server's text.
//
// The API is described in docs/backend.md. The answer types here (Config,
// Published, Status, ...) are the ones the server encodes its answers
// with, so they always match what it sends.
package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls one pushpull server. Create it with New.
type Client struct {
	base     string // the backend route, ending in "/"
	key      string
	hc       *http.Client
	pubURL   string
	statsURL string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the client send its requests with hc instead of
// http.DefaultClient.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.hc = hc }
}

// WithPublishURL sets the text publish route PublishRaw and Subscribers
// use. The default is /bitrix/pub/ on the backend route's host.
func WithPublishURL(u string) Option {
	return func(c *Client) { c.pubURL = u }
}

// WithStatsURL sets the statistics route ServerStats reads. The default
// is /server-stat/ on the backend route's host.
func WithStatsURL(u string) Option {
	return func(c *Client) { c.statsURL = u }
}

// New returns a client of the backend API at baseURL (the backend route,
// such as "http://127.0.0.1:9010/pushpull/"), authenticated with
// backendKey (security.backendKey).
func New(baseURL, backendKey string, opts ...Option) *Client {
	c := &Client{
		base: strings.TrimSuffix(baseURL, "/") + "/",
		key:  backendKey,
		hc:   http.DefaultClient,
	}
	// The stock layout serves the publish and statistics routes on the
	// same server as the backend route.
	if u, err := url.Parse(baseURL); err == nil && u.Host != "" {
		origin := u.Scheme + "://" + u.Host
		c.pubURL = origin + "/bitrix/pub/"
		c.statsURL = origin + "/server-stat/"
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Error is a call the server refused.
type Error struct {
	StatusCode int    // the HTTP status
	Message    string // the server's error text
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("pushpull: %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	return fmt.Sprintf("pushpull: %d %s", e.StatusCode, e.Message)
}

// StatusCode returns the HTTP status of err if it is (or wraps) an *Error,
// else 0.
func StatusCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// Message is a command as the pull module publishes it. Params and Extra
// marshal to JSON objects (a map, a struct, or a json.RawMessage). The
// server completes Extra with the server time and the API revision.
type Message struct {
	ModuleID string `json:"module_id"`
	Command  string `json:"command"`
	Params   any    `json:"params,omitempty"`
	Extra    any    `json:"extra,omitempty"`
}

// Publish is one publish: the message and its receivers, any mix of users
// (their current channels), channel ids (signed or not), watch tags and,
// with Shared, everyone.
type Publish struct {
	Users    []string `json:"users,omitempty"`
	Channels []string `json:"channels,omitempty"`
	Tags     []string `json:"tags,omitempty"`
	Shared   bool     `json:"shared,omitempty"`
	Message  Message  `json:"message"`
	Expiry   int      `json:"expiry,omitempty"` // seconds of life; 0: the server's default
	// NotifyOffline also notifies the receivers who are not connected,
	// through Web Push (its Users must be empty: they are the publish's).
	NotifyOffline *Notification `json:"notifyOffline,omitempty"`
}

// Published reports one publish: the ids of the stored messages (one per
// up to 1,000 channels), how many channels they went to and how many of
// the users had a channel. Users never issued a channel are skipped.
type Published struct {
	MIDs     []string `json:"mids"`
	Channels int      `json:"channels"`
	Users    int      `json:"users"`
	// Push is what the publish's notifyOffline queued for Web Push.
	Push *PushQueued `json:"push,omitempty"`
}

// PushQueued counts the Web Push notifications a publish queued (one per
// subscription of the users not connected).
type PushQueued struct {
	Queued int `json:"queued"`
}

// Config is a user's client config, what pull.config.get answers in
// Bitrix: hand it to the official client as the REST result.
type Config struct {
	Server         ServerInfo               `json:"server"`
	API            APIInfo                  `json:"api"`
	Channels       map[string]ChannelInfo   `json:"channels"` // "private", "shared"
	PublicChannels map[string]PublicChannel `json:"publicChannels"`
	ClientID       *string                  `json:"clientId"`
	JWT            *string                  `json:"jwt"` // protocol 5 with a security key
	Exp            int64                    `json:"exp"`
	ServerTime     string                   `json:"serverTime"`
}

// ServerInfo is a config's server part. long_pooling_secure is the
// original's spelling.
type ServerInfo struct {
	Version           int    `json:"version"`
	ServerEnabled     bool   `json:"server_enabled"`
	LongPolling       string `json:"long_polling"`
	LongPollingSecure string `json:"long_pooling_secure"`
	WebSocket         string `json:"websocket"`
	WebSocketSecure   string `json:"websocket_secure"`
	WebSocketEnabled  bool   `json:"websocket_enabled"`
	Publish           string `json:"publish"`
	PublishSecure     string `json:"publish_secure"`
	PublishEnabled    bool   `json:"publish_enabled"`
	Mode              string `json:"mode"`
	Hostname          string `json:"hostname"`
	ConfigTimestamp   int64  `json:"config_timestamp"`
}

// APIInfo is a config's api part: the pull API revision.
type APIInfo struct {
	RevisionWeb    int `json:"revision_web"`
	RevisionMobile int `json:"revision_mobile"`
}

// ChannelInfo is a channel of a config or of a channel_expire notice: the
// signed id clients subscribe with and its lifetime (RFC 3339).
type ChannelInfo struct {
	ID    string `json:"id"`
	Start string `json:"start"`
	End   string `json:"end"`
	Type  string `json:"type"`
}

// PublicChannel is a user's public channel, as clients publish to it: the
// id and the signature of "public:<id>".
type PublicChannel struct {
	UserID    string `json:"user_id"`
	PublicID  string `json:"public_id"`
	Signature string `json:"signature"`
	Start     string `json:"start"`
	End       string `json:"end"`
}

// Watched answers Watch: the tags watched and when the watch ends (unix
// seconds).
type Watched struct {
	Expires int64    `json:"expires"`
	Tags    []string `json:"tags"`
}

// Extended answers ExtendWatch: the tags renewed, and those the user does
// not watch (the official client stops extending them).
type Extended struct {
	Extended []string `json:"extended"`
	Unknown  []string `json:"unknown"`
}

// Status is a user's online status. LastSeen is the seconds since the user
// was last seen online (0 while online), nil when never seen.
type Status struct {
	Online   bool   `json:"online"`
	LastSeen *int64 `json:"lastSeen,omitempty"`
}

// ProcessStats is one server process's entry on the statistics route.
type ProcessStats struct {
	PID             int    `json:"pid"`
	Date            int64  `json:"date"` // unix ms of the last update
	ProcessUniqueID string `json:"processUniqueId"`
	WebSockets      int64  `json:"websockets"`
	Pollings        int64  `json:"pollings"`
	Channels        int    `json:"channels"`
}

// PushSubscription is a browser's Web Push subscription, as
// PushSubscription.toJSON() gives it.
type PushSubscription struct {
	Endpoint       string   `json:"endpoint"`
	ExpirationTime *float64 `json:"expirationTime,omitempty"`
	Keys           struct {
		P256dh string `json:"p256dh"`
		Auth   string `json:"auth"`
	} `json:"keys"`
}

// Notification is a Web Push send, with the parameters of the Bitrix
// CPushManager::AddQueue (docs/webpush.md).
type Notification struct {
	Users           []string `json:"USER_ID,omitempty"`
	SkipUsers       []string `json:"SKIP_USERS,omitempty"`
	Message         string   `json:"MESSAGE"`
	Tag             string   `json:"TAG,omitempty"`
	SubTag          string   `json:"SUB_TAG,omitempty"`
	Badge           *int     `json:"BADGE,omitempty"`
	Params          any      `json:"PARAMS,omitempty"`
	AdvancedParams  any      `json:"ADVANCED_PARAMS,omitempty"` // an object: senderName, notificationsToCancel, ...
	Expiry          int      `json:"EXPIRY,omitempty"`          // seconds; 0: 43,200
	Sound           string   `json:"SOUND,omitempty"`
	AppID           string   `json:"APP_ID,omitempty"`
	Important       bool     `json:"IMPORTANT,omitempty"`
	SendImmediately bool     `json:"SEND_IMMEDIATELY,omitempty"`
	SendDeferred    bool     `json:"SEND_DEFERRED,omitempty"`
}

// PushDecision is what PushSend decided for a user: "send", "silent",
// "defer" or "skip" (with the reason).
type PushDecision struct {
	Decision      string `json:"decision"`
	Reason        string `json:"reason,omitempty"`
	Subscriptions int    `json:"subscriptions,omitempty"`
}

// PushSent answers PushSend: the notifications queued (one per
// subscription) and each user's decision.
type PushSent struct {
	Queued int                     `json:"queued"`
	Users  map[string]PushDecision `json:"users"`
}

// PushKey returns the VAPID public key browsers subscribe with
// (applicationServerKey).
func (c *Client) PushKey(ctx context.Context) (string, error) {
	var out struct {
		PublicKey string `json:"publicKey"`
	}
	err := c.call(ctx, "push/key", struct{}{}, &out)
	return out.PublicKey, err
}

// PushSubscribe registers a browser's subscription for user (and the
// application appID, "" for none) and returns its id.
func (c *Client) PushSubscribe(ctx context.Context, user, appID string, sub PushSubscription) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	err := c.call(ctx, "push/subscribe", map[string]any{"userId": user, "appId": appID, "subscription": sub}, &out)
	return out.ID, err
}

// PushUnsubscribe removes user's subscription with endpoint; false when
// there was none.
func (c *Client) PushUnsubscribe(ctx context.Context, user, endpoint string) (bool, error) {
	var out struct {
		Removed bool `json:"removed"`
	}
	err := c.call(ctx, "push/unsubscribe", map[string]string{"userId": user, "endpoint": endpoint}, &out)
	return out.Removed, err
}

// PushSend queues a notification to n.Users as CPushManager::AddQueue
// does: each is sent to now, silently, later, or skipped.
func (c *Client) PushSend(ctx context.Context, n Notification) (PushSent, error) {
	var out PushSent
	err := c.call(ctx, "push/send", n, &out)
	return out, err
}

// PushCancel removes the waiting notifications of users whose tag or
// sub-tag is one of tags, and returns how many.
func (c *Client) PushCancel(ctx context.Context, users, tags []string) (int, error) {
	var out struct {
		Cancelled int `json:"cancelled"`
	}
	err := c.call(ctx, "push/cancel", map[string][]string{"USER_ID": users, "TAGS": tags}, &out)
	return out.Cancelled, err
}

// Commands Command sends.
const (
	ConfigExpire  = "config_expire"  // the client refetches its config and reconnects
	ServerRestart = "server_restart" // the client reconnects
)

// Config returns user's client config, issuing the user's channels on the
// first call.
func (c *Client) Config(ctx context.Context, user string) (*Config, error) {
	var out Config
	if err := c.call(ctx, "config", map[string]string{"userId": user}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Publish publishes p.
func (c *Client) Publish(ctx context.Context, p Publish) (Published, error) {
	out, err := c.published(ctx, "publish", p, 1)
	if err != nil {
		return Published{}, err
	}
	return out[0], nil
}

// Batch publishes up to 1,000 publishes in one call and reports each, in
// order. The server checks them all before it publishes any.
func (c *Client) Batch(ctx context.Context, ps []Publish) ([]Published, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	return c.published(ctx, "publish", map[string][]Publish{"batch": ps}, len(ps))
}

// published makes a call that answers {"published": [...]} and returns
// the results, which must be want.
func (c *Client) published(ctx context.Context, name string, req any, want int) ([]Published, error) {
	var out struct {
		Published []Published `json:"published"`
	}
	if err := c.call(ctx, name, req, &out); err != nil {
		return nil, err
	}
	if len(out.Published) != want {
		return nil, fmt.Errorf("pushpull: %s answered %d results; want %d", name, len(out.Published), want)
	}
	return out.Published, nil
}

type watchRequest struct {
	UserID string   `json:"userId"`
	Tags   []string `json:"tags"`
	TTL    float64  `json:"ttl,omitempty"`
}

// Watch makes user watch tags for ttl (0: the server's backend.watchTTL):
// a publish to one of the tags reaches the user.
func (c *Client) Watch(ctx context.Context, user string, tags []string, ttl time.Duration) (Watched, error) {
	var out Watched
	err := c.call(ctx, "watch", watchRequest{user, tags, ttl.Seconds()}, &out)
	return out, err
}

// ExtendWatch renews user's watches of tags still alive, for ttl (0: the
// server's default).
func (c *Client) ExtendWatch(ctx context.Context, user string, tags []string, ttl time.Duration) (Extended, error) {
	var out Extended
	err := c.call(ctx, "watch/extend", watchRequest{user, tags, ttl.Seconds()}, &out)
	return out, err
}

// Unwatch ends user's watches of tags.
func (c *Client) Unwatch(ctx context.Context, user string, tags []string) error {
	return c.call(ctx, "unwatch", watchRequest{UserID: user, Tags: tags}, nil)
}

// Online returns the status of each user, keyed by user id.
func (c *Client) Online(ctx context.Context, users []string) (map[string]Status, error) {
	var out struct {
		Users map[string]Status `json:"users"`
	}
	if err := c.call(ctx, "online", map[string][]string{"users": users}, &out); err != nil {
		return nil, err
	}
	return out.Users, nil
}

// PublicChannels returns the public channels of the users who have a
// channel, keyed by user id (pull.channel.public.list).
func (c *Client) PublicChannels(ctx context.Context, users []string) (map[string]PublicChannel, error) {
	var out struct {
		Channels map[string]PublicChannel `json:"channels"`
	}
	if err := c.call(ctx, "public", map[string][]string{"users": users}, &out); err != nil {
		return nil, err
	}
	return out.Channels, nil
}

type commandRequest struct {
	Users   []string `json:"users,omitempty"`
	Shared  bool     `json:"shared,omitempty"`
	Command string   `json:"command"`
}

// Command sends command (ConfigExpire or ServerRestart) to the clients of
// users.
func (c *Client) Command(ctx context.Context, users []string, command string) (Published, error) {
	return c.command(ctx, commandRequest{Users: users, Command: command})
}

// CommandAll sends command (ConfigExpire or ServerRestart) to every client,
// through the shared channel.
func (c *Client) CommandAll(ctx context.Context, command string) (Published, error) {
	return c.command(ctx, commandRequest{Shared: true, Command: command})
}

func (c *Client) command(ctx context.Context, req commandRequest) (Published, error) {
	out, err := c.published(ctx, "command", req, 1)
	if err != nil {
		return Published{}, err
	}
	return out[0], nil
}

// call posts req as JSON to the backend call and decodes the answer into
// out (nil: discard it).
func (c *Client) call(ctx context.Context, name string, req, out any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("pushpull: %s: %w", name, err)
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+name, bytes.NewReader(body))
	if err != nil {
		return err
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+c.key)
	data, err := c.do(r)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("pushpull: %s: bad answer: %w", name, err)
	}
	return nil
}

// maxAnswer bounds what the client reads of an answer.
const maxAnswer = 64 << 20

// do sends r and returns the answer's body, or an *Error for a status
// other than 200. The backend API's errors are {"error": "..."}; the
// original routes answer plain text.
func (c *Client) do(r *http.Request) ([]byte, error) {
	resp, err := c.hc.Do(r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return data, nil
	}
	e := &Error{StatusCode: resp.StatusCode, Message: strings.TrimSpace(string(data))}
	var msg struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &msg) == nil && msg.Error != "" {
		e.Message = msg.Error
	}
	return nil, e
}

// PublishRaw posts body, the message text, to channels on the text
// publish route (POST /bitrix/pub/?CHANNEL_ID=a/b), as the Bitrix pull
// module does; no backend key is needed. Channel ids are given as the
// server expects them (signed when it requires signed publishes). expiry,
// rounded down to seconds, shortens the message's life; 0 keeps the
// server's default.
func (c *Client) PublishRaw(ctx context.Context, channels []string, body []byte, expiry time.Duration) error {
	if len(channels) == 0 {
		return errors.New("pushpull: publish: no channels")
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, c.withChannels(c.pubURL, channels), bytes.NewReader(body))
	if err != nil {
		return err
	}
	r.Header.Set("Content-Type", "text/plain")
	if s := int64(expiry / time.Second); s > 0 {
		r.Header.Set("Message-Expiry", strconv.FormatInt(s, 10))
	}
	_, err = c.do(r)
	return err
}

// Subscribers returns how many subscribers each of channels has on the
// text publish route (GET /bitrix/pub/?CHANNEL_ID=a/b); channels without
// any are absent.
func (c *Client) Subscribers(ctx context.Context, channels []string) (map[string]int, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, c.withChannels(c.pubURL, channels), nil)
	if err != nil {
		return nil, err
	}
	data, err := c.do(r)
	if err != nil {
		return nil, err
	}
	var out struct {
		Infos []struct {
			Channel     string `json:"channel"`
			Subscribers int    `json:"subscribers"`
		} `json:"infos"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("pushpull: subscribers: bad answer: %w", err)
	}
	m := make(map[string]int, len(out.Infos))
	for _, i := range out.Infos {
		if i.Subscribers > 0 {
			m[i.Channel] = i.Subscribers
		}
	}
	return m, nil
}

func (c *Client) withChannels(route string, channels []string) string {
	sep := "?"
	if strings.Contains(route, "?") {
		sep = "&"
	}
	return route + sep + "CHANNEL_ID=" + url.QueryEscape(strings.Join(channels, "/"))
}

// ServerStats returns the statistics of every live server process, from
// the statistics route (GET /server-stat/).
func (c *Client) ServerStats(ctx context.Context) ([]ProcessStats, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, c.statsURL, nil)
	if err != nil {
		return nil, err
	}
	data, err := c.do(r)
	if err != nil {
		return nil, err
	}
	var out []ProcessStats
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("pushpull: stats: bad answer: %w", err)
	}
	return out, nil
}
