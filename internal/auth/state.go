package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// oauthState is what the Google start step must remember until the callback:
// the state echoed back by Google, the PKCE verifier and the ID token nonce.
// It travels in a signed, HttpOnly cookie, so no server-side state is needed
// and any instance can finish a sign-in another one started.
type oauthState struct {
	State     string `json:"s"`
	Verifier  string `json:"v"`
	Nonce     string `json:"n"`
	ExpiresAt int64  `json:"e"` // unix seconds; checked here, not only by the browser's Max-Age
}

var (
	errStateMissing = errors.New("sign-in state cookie is missing")
	errStateInvalid = errors.New("sign-in state cookie is malformed or its signature is wrong")
	errStateExpired = errors.New("sign-in state has expired")
)

// stateKey derives the key that signs state cookies from the auth secret, so a
// state signature can never be replayed as a session cookie signature.
func stateKey(secret string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("astra oauth state v1"))
	return m.Sum(nil)
}

// sealState encodes st as base64url(JSON) + "." + base64url(HMAC-SHA256).
func sealState(key []byte, st oauthState) (string, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + stateMAC(key, payload), nil
}

// openState verifies and decodes a sealed state; it fails when the signature
// is wrong or the state is past its expiry at now.
func openState(key []byte, value string, now time.Time) (oauthState, error) {
	var st oauthState
	payload, sig, ok := strings.Cut(value, ".")
	if !ok || payload == "" {
		return st, errStateInvalid
	}
	if !hmac.Equal([]byte(sig), []byte(stateMAC(key, payload))) {
		return st, errStateInvalid
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return st, errStateInvalid
	}
	if err := json.Unmarshal(b, &st); err != nil || st.State == "" || st.Verifier == "" || st.Nonce == "" {
		return st, errStateInvalid
	}
	if !now.Before(time.Unix(st.ExpiresAt, 0)) {
		return st, errStateExpired
	}
	return st, nil
}

func stateMAC(key []byte, payload string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
