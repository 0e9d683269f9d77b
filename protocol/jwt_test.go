package protocol

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestVerifyJWT(t *testing.T) {
	key := []byte("k")
	now := time.Unix(1700000000, 0)
	good := map[string]any{"iss": "host", "iat": now.Unix(), "exp": now.Unix() + 43200, "sub": "5", "chan": "aaa,bbb"}
	c, err := VerifyJWT(SignJWT(good, key), key, now)
	if err != nil || c.Subject != "5" || c.Issuer != "host" || !slices.Equal(c.Channels, []string{"aaa", "bbb"}) || !c.Expires.Equal(now.Add(12*time.Hour)) {
		t.Fatalf("VerifyJWT = %+v, %v", c, err)
	}
	// Numeric sub and a list of channels are read too.
	c, err = VerifyJWT(SignJWT(map[string]any{"exp": now.Unix() + 1, "sub": 7, "chan": []string{"x"}}, key), key, now)
	if err != nil || c.Subject != "7" || !slices.Equal(c.Channels, []string{"x"}) {
		t.Fatalf("VerifyJWT = %+v, %v", c, err)
	}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range good {
			m[a] = b
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`))
	tok := SignJWT(good, key)
	for name, c := range map[string]struct {
		token string
		want  error
	}{
		"other key":     {SignJWT(good, []byte("other")), ErrJWTSignature},
		"expired":       {SignJWT(with("exp", now.Unix()-120), key), ErrJWTExpired},
		"no exp":        {SignJWT(with("exp", nil), key), ErrJWTExpired},
		"future iat":    {SignJWT(with("iat", now.Unix()+3600), key), ErrJWTNotYet},
		"alg none":      {none + tok[strings.IndexByte(tok, '.'):], ErrJWTAlg},
		"two parts":     {"a.b", ErrJWTMalformed},
		"tampered body": {tok[:strings.IndexByte(tok, '.')+1] + "e30" + tok[strings.LastIndexByte(tok, '.'):], ErrJWTSignature},
	} {
		if _, err := VerifyJWT(c.token, key, now); err != c.want {
			t.Errorf("%s: %v; want %v", name, err, c.want)
		}
	}
	// Small clock differences are tolerated.
	if _, err := VerifyJWT(SignJWT(with("exp", now.Unix()-10), key), key, now); err != nil {
		t.Errorf("just expired within skew: %v", err)
	}
}

func FuzzVerifyJWT(f *testing.F) {
	key := []byte("k")
	f.Add(SignJWT(map[string]any{"exp": 2e9, "sub": "1", "chan": "a,b"}, key))
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.x")
	f.Add("..")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := VerifyJWT(token, key, time.Unix(1700000000, 0))
		if err != nil {
			return
		}
		// Accepted tokens carry the key's HMAC of their first two parts.
		i := strings.LastIndexByte(token, '.')
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(token[:i]))
		if got, _ := base64.RawURLEncoding.DecodeString(token[i+1:]); !hmac.Equal(got, mac.Sum(nil)) {
			t.Fatalf("accepted a token not signed by the key: %q", token)
		}
		for _, ch := range c.Channels {
			if ch == "" || strings.Contains(ch, ",") {
				t.Fatalf("channel %q", ch)
			}
		}
	})
}
