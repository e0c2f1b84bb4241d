// Package auth verifies and mints sessions exactly as Better Auth does, so the
// Next.js app and astra share one sign-in: the same signed cookie, the same
// session records, the same sliding expiry.
package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strings"
)

// sigLen is the length of a standard base64 (padded) HMAC-SHA256.
const sigLen = 44

// Sign returns the cookie value Better Auth sets for a session token:
// URL-encoded token + "." + base64(HMAC-SHA256(secret, token)).
func Sign(secret, token string) string {
	return url.QueryEscape(token + "." + signature(secret, token))
}

func signature(secret, token string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(token))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Verify checks a cookie value and returns the session token it carries.
// The value is path-unescaped once (a "+" stays a "+"), split at the last
// dot, and its 44-character signature compared in constant time.
func Verify(secret, value string) (token string, ok bool) {
	raw, err := url.PathUnescape(value)
	if err != nil {
		return "", false
	}
	i := strings.LastIndexByte(raw, '.')
	if i <= 0 {
		return "", false
	}
	token, sig := raw[:i], raw[i+1:]
	if len(sig) != sigLen {
		return "", false
	}
	want := signature(secret, token)
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return "", false
	}
	return token, true
}
