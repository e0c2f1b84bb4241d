package engine

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
)

// A checkpoint holds step outputs and state as they are, secrets included
// (transitions and outputs are redacted; the checkpoint cannot be, or a
// resumed run would see "[redacted]" instead of the value). So a checkpoint
// that contains a secret's value is stored sealed with AES-256-GCM, bound to
// its execution's id: {"sealed": "<nonce and ciphertext>"}. Checkpoints
// without secrets stay plain JSON, and both forms are read.

// CheckpointKey derives the checkpoint sealing key from the engine's API
// key, which every instance of one deployment shares, so any instance can
// resume any execution. Rotating the API key makes the sealed checkpoints
// of executions not yet finished (paused ones in particular) unreadable:
// those fail when they resume.
func CheckpointKey(apiKey string) []byte {
	// HKDF-SHA256 fails only for lengths above 255*32 bytes.
	k, _ := hkdf.Key(sha256.New, []byte(apiKey), nil, "astra engine checkpoint sealing v1", 32)
	return k
}

type sealedCheckpoint struct {
	Sealed []byte `json:"sealed"` // nonce followed by ciphertext; base64 in JSON
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("engine: checkpoint key: %w", err)
	}
	return cipher.NewGCM(block)
}

// sealCheckpoint seals raw when it contains any of the secret values.
func (e *Engine) sealCheckpoint(executionID string, raw []byte, secrets map[string]string) ([]byte, error) {
	if !containsSecret(raw, secrets) {
		return raw, nil
	}
	nonce := make([]byte, e.aead.NonceSize(), e.aead.NonceSize()+len(raw)+e.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal checkpoint: %w", err)
	}
	return json.Marshal(sealedCheckpoint{Sealed: e.aead.Seal(nonce, nonce, raw, []byte(executionID))})
}

// openCheckpoint returns a checkpoint's plain JSON, unsealing it if sealed.
func (e *Engine) openCheckpoint(executionID string, raw []byte) ([]byte, error) {
	if !bytes.HasPrefix(bytes.TrimSpace(raw), []byte(`{"sealed":`)) {
		return raw, nil
	}
	var s sealedCheckpoint
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("read sealed checkpoint: %w", err)
	}
	n := e.aead.NonceSize()
	if len(s.Sealed) < n {
		return nil, errors.New("sealed checkpoint is truncated")
	}
	plain, err := e.aead.Open(nil, s.Sealed[:n], s.Sealed[n:], []byte(executionID))
	if err != nil {
		return nil, errors.New("sealed checkpoint cannot be opened with this engine's key (was the key rotated?)")
	}
	return plain, nil
}

// containsSecret reports whether raw (JSON) holds a secret's value, as is
// or as JSON escapes it inside a string.
func containsSecret(raw []byte, secrets map[string]string) bool {
	for _, v := range secrets {
		if v == "" {
			continue
		}
		if bytes.Contains(raw, []byte(v)) {
			return true
		}
		q, _ := json.Marshal(v)
		if len(q) >= 2 && bytes.Contains(raw, q[1:len(q)-1]) {
			return true
		}
	}
	return false
}
