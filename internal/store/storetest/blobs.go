package storetest

import (
	"bytes"
	"context"
	"testing"

	"github.com/astra-app/astra/internal/responder"
)

func testBlobs(t *testing.T, s responder.Store, _ Options) {
	ctx := context.Background()
	data := bytes.Repeat([]byte{0, 1, 2, 255}, 1000)
	b := &responder.Blob{UserID: responder.NewID(), ContentType: "audio/mpeg", Data: data}
	if err := s.PutBlob(ctx, b); err != nil {
		t.Fatal(err)
	}
	if !responder.ValidID(b.ID) || b.CreatedAt.IsZero() {
		t.Fatalf("PutBlob set id %q, createdAt %v", b.ID, b.CreatedAt)
	}
	got, err := s.Blob(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.UserID != b.UserID || got.ContentType != "audio/mpeg" || !bytes.Equal(got.Data, data) || !got.CreatedAt.Equal(b.CreatedAt) {
		t.Fatalf("Blob = %+v (%d bytes), want %+v", got.ID, len(got.Data), b.ID)
	}
	for _, id := range []string{"", "nope", "ZZZZZZZZZZZZZZZZZZZZZZZZ", responder.NewID()} {
		if _, err := s.Blob(ctx, id); !responder.IsNotFound(err) {
			t.Errorf("Blob(%q) = %v, want ENOTFOUND", id, err)
		}
	}
	tooBig := &responder.Blob{UserID: "u", ContentType: "audio/mpeg", Data: make([]byte, responder.MaxBlobBytes+1)}
	if err := s.PutBlob(ctx, tooBig); responder.ErrorCode(err) != responder.ETOOLARGE {
		t.Errorf("oversized blob: %v, want ETOOLARGE", err)
	}
	if err := s.PutBlob(ctx, &responder.Blob{UserID: "u", Data: data}); responder.ErrorCode(err) != responder.EINVALID {
		t.Errorf("blob without content type: %v, want EINVALID", err)
	}
}
