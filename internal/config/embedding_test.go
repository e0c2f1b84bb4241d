package config

import (
	"strings"
	"testing"
)

func TestEmbeddingSettings(t *testing.T) {
	c, err := load(t, map[string]string{})
	if err != nil || c.EmbeddingBaseURL != "" {
		t.Fatalf("default: %+v %v", c, err)
	}
	c, err = load(t, map[string]string{"ASTRA_EMBEDDING_BASE_URL": "http://127.0.0.1:9/v1/", "ASTRA_EMBEDDING_MODEL": "e5", "ASTRA_EMBEDDING_API_KEY": "k"})
	if err != nil || c.EmbeddingBaseURL != "http://127.0.0.1:9/v1" || c.EmbeddingModel != "e5" || c.EmbeddingAPIKey != "k" {
		t.Fatalf("set: %+v %v", c, err)
	}
	for env, want := range map[string]map[string]string{
		"ASTRA_EMBEDDING_MODEL is required":           {"ASTRA_EMBEDDING_BASE_URL": "http://127.0.0.1:9/v1"},
		"ASTRA_EMBEDDING_BASE_URL \"nope\" is not an": {"ASTRA_EMBEDDING_BASE_URL": "nope", "ASTRA_EMBEDDING_MODEL": "e5"},
	} {
		if _, err := load(t, want); err == nil || !strings.Contains(err.Error(), env) {
			t.Errorf("%v: %v", want, err)
		}
	}
}
