package ferrettest

import (
	"encoding/binary"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func TestCommandName(t *testing.T) {
	t.Parallel()
	body, err := bson.Marshal(bson.D{{Key: "findAndModify", Value: "outbox"}, {Key: "$db", Value: "astra"}})
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 21, 21+len(body))
	binary.LittleEndian.PutUint32(msg[12:], opMsg)
	msg = append(msg, body...)
	binary.LittleEndian.PutUint32(msg, uint32(len(msg)))
	if got := commandName(msg); got != "findAndModify" {
		t.Errorf("commandName = %q, want findAndModify", got)
	}
	if got := commandName(msg[:24]); got != "" {
		t.Errorf("a truncated message names %q", got)
	}
}
