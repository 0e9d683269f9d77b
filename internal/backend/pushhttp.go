package backend

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/pushpull/pushpull/internal/webpush"
)

// yn is a Bitrix flag: true, false, "Y" or "N".
type yn bool

func (b *yn) UnmarshalJSON(d []byte) error {
	switch strings.ToUpper(string(d)) {
	case "TRUE", `"Y"`, "1", `"1"`:
		*b = true
	case "FALSE", `"N"`, "0", `"0"`, `""`, "NULL":
		*b = false
	default:
		return errors.New(`a flag must be true, false, "Y" or "N"`)
	}
	return nil
}

// idList is one user id or a list of them.
type idList []ID

func (l *idList) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '[' {
		var ids []ID
		if err := json.Unmarshal(b, &ids); err != nil {
			return err
		}
		*l = ids
		return nil
	}
	var id ID
	if err := json.Unmarshal(b, &id); err != nil {
		return err
	}
	*l = idList{id}
	return nil
}

// AddQueueRequest is the push/send call's body: CPushManager::AddQueue's
// parameters, under their names.
type AddQueueRequest struct {
	UserID          idList          `json:"USER_ID"`
	SkipUsers       []ID            `json:"SKIP_USERS,omitempty"`
	Message         string          `json:"MESSAGE"`
	Tag             string          `json:"TAG,omitempty"`
	SubTag          string          `json:"SUB_TAG,omitempty"`
	Badge           *ID             `json:"BADGE,omitempty"`
	Params          json.RawMessage `json:"PARAMS,omitempty"`
	AdvancedParams  json.RawMessage `json:"ADVANCED_PARAMS,omitempty"`
	Expiry          *float64        `json:"EXPIRY,omitempty"`
	Sound           string          `json:"SOUND,omitempty"`
	AppID           string          `json:"APP_ID,omitempty"`
	Important       yn              `json:"IMPORTANT,omitempty"`
	SendImmediately yn              `json:"SEND_IMMEDIATELY,omitempty"`
	SendDeferred    yn              `json:"SEND_DEFERRED,omitempty"`
}

// notification checks r; users are the receivers when r names none (a
// publish's).
func (r AddQueueRequest) notification(users []string) (Notification, error) {
	n := Notification{Message: r.Message, Params: r.Params, AdvancedParams: r.AdvancedParams, Sound: r.Sound,
		Important: bool(r.Important), Immediately: bool(r.SendImmediately), Deferred: bool(r.SendDeferred)}
	var err error
	if users == nil {
		if n.Users, err = checkIDs(r.UserID, maxUsers); err != nil {
			return n, err
		}
		if len(n.Users) == 0 {
			return n, badf("USER_ID: no users")
		}
	} else {
		n.Users = users
	}
	if n.Skip, err = checkIDs(r.SkipUsers, maxUsers); err != nil {
		return n, err
	}
	if n.Message == "" && len(r.Params) == 0 {
		return n, badf("MESSAGE: empty (give MESSAGE or PARAMS)")
	}
	if len(n.Message) > maxPushText {
		return n, badf("MESSAGE: longer than %d bytes", maxPushText)
	}
	for name, v := range map[string]*string{"TAG": &r.Tag, "SUB_TAG": &r.SubTag, "SOUND": &r.Sound, "APP_ID": &r.AppID} {
		if len(*v) > maxTagLen-1 || strings.ContainsFunc(*v, func(c rune) bool { return c < ' ' || c == 0x7f }) {
			return n, badf("%s: want at most %d printable characters", name, maxTagLen-1)
		}
	}
	n.Tag, n.SubTag, n.AppID = r.Tag, r.SubTag, r.AppID
	if r.Badge != nil {
		b, err := strconv.ParseInt(string(*r.Badge), 10, 32)
		if err != nil || b < 0 {
			return n, badf("BADGE: want a number >= 0")
		}
		n.Badge = &b
	}
	if len(r.AdvancedParams) > 0 && string(r.AdvancedParams) != "null" {
		if !json.Valid(r.AdvancedParams) || r.AdvancedParams[0] != '{' {
			return n, badf("ADVANCED_PARAMS: must be an object")
		}
		if c := notificationsToCancel(r.AdvancedParams); len(c) > maxTags {
			return n, badf("ADVANCED_PARAMS.notificationsToCancel: at most %d tags", maxTags)
		}
	}
	if r.Expiry != nil {
		e := *r.Expiry
		if e < 0 || e > maxExpiry || e != e {
			return n, badf("EXPIRY: want 0 to %d seconds", maxExpiry)
		}
		n.Expiry = time.Duration(e) * time.Second
	}
	return n, nil
}

func (s *Service) httpPushSend(ctx context.Context, body []byte) (any, error) {
	var req AddQueueRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	n, err := req.notification(nil)
	if err != nil {
		return nil, err
	}
	return s.AddQueue(ctx, n)
}

// subscriptionJSON is PushSubscription.toJSON(): {endpoint, keys: {p256dh,
// auth}, expirationTime}.
type subscriptionJSON struct {
	Endpoint       string   `json:"endpoint"`
	ExpirationTime *float64 `json:"expirationTime,omitempty"`
	Keys           struct {
		P256dh string `json:"p256dh"`
		Auth   string `json:"auth"`
	} `json:"keys"`
}

type subscribeRequest struct {
	UserID       ID               `json:"userId"`
	AppID        string           `json:"appId,omitempty"`
	Subscription subscriptionJSON `json:"subscription"`
}

func (s *Service) httpPushSubscribe(ctx context.Context, body []byte) (any, error) {
	var req subscribeRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	user, err := checkID(req.UserID)
	if err != nil {
		return nil, err
	}
	if len(req.AppID) > maxIDLen || strings.ContainsFunc(req.AppID, badRune) {
		return nil, badf("appId: want at most %d printable characters without spaces", maxIDLen)
	}
	sub := webpush.Subscription{Endpoint: req.Subscription.Endpoint, P256dh: req.Subscription.Keys.P256dh, Auth: req.Subscription.Keys.Auth}
	id, err := s.Subscribe(ctx, user, req.AppID, sub)
	if err != nil {
		return nil, err
	}
	return map[string]string{"id": id}, nil
}

type unsubscribeRequest struct {
	UserID   ID     `json:"userId"`
	Endpoint string `json:"endpoint"`
}

func (s *Service) httpPushUnsubscribe(ctx context.Context, body []byte) (any, error) {
	var req unsubscribeRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	user, err := checkID(req.UserID)
	if err != nil {
		return nil, err
	}
	if req.Endpoint == "" {
		return nil, badf("endpoint: missing")
	}
	ok, err := s.Unsubscribe(ctx, user, req.Endpoint)
	if err != nil {
		return nil, err
	}
	return map[string]bool{"removed": ok}, nil
}

type pushCancelRequest struct {
	UserID idList   `json:"USER_ID"`
	Tags   []string `json:"TAGS"`
}

func (s *Service) httpPushCancel(ctx context.Context, body []byte) (any, error) {
	var req pushCancelRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	users, err := checkIDs(req.UserID, maxUsers)
	if err != nil {
		return nil, err
	}
	tags, err := checkTags(req.Tags)
	if err != nil {
		return nil, err
	}
	if len(users) == 0 || len(tags) == 0 {
		return nil, badf("give USER_ID and TAGS")
	}
	n, err := s.CancelPush(ctx, users, tags)
	if err != nil {
		return nil, err
	}
	return map[string]int{"cancelled": n}, nil
}

func (s *Service) httpPushKey(context.Context, []byte) (any, error) {
	if s.push == nil {
		return nil, errPushOff
	}
	return map[string]string{"publicKey": s.VAPIDPublicKey()}, nil
}
