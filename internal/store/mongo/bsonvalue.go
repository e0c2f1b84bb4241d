package mongo

import (
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// userRef is a Better Auth foreign key (session.userId, account.userId).
// Better Auth stores it as an ObjectId; older data holds a hex string, which
// Better Auth itself then fails to join, so it is read either way but always
// written as an ObjectId.
type userRef string

func (r userRef) MarshalBSONValue() (byte, []byte, error) {
	oid, ok := objectID(string(r))
	if !ok {
		return 0, nil, fmt.Errorf("user id %q is not a 24-hex id", string(r))
	}
	t, b, err := bson.MarshalValue(oid)
	return byte(t), b, err
}

func (r *userRef) UnmarshalBSONValue(typ byte, data []byte) error {
	s, err := idString(typ, data)
	*r = userRef(s)
	return err
}

// userKey is the user id on Astra's own rows (responder_outbox.userId,
// responder_events.userId): the original app wrote Better Auth's user id as
// a hex string, and queries match it as one. It is written as a string and
// read from a string or an ObjectId.
type userKey string

func (k *userKey) UnmarshalBSONValue(typ byte, data []byte) error {
	s, err := idString(typ, data)
	*k = userKey(s)
	return err
}

func idString(typ byte, data []byte) (string, error) {
	v := bson.RawValue{Type: bson.Type(typ), Value: data}
	switch v.Type {
	case bson.TypeString:
		return v.StringValue(), nil
	case bson.TypeObjectID:
		return v.ObjectID().Hex(), nil
	case bson.TypeNull, bson.TypeUndefined:
		return "", nil
	default:
		return "", fmt.Errorf("user id has BSON type %s, want string or ObjectId", v.Type)
	}
}

// metadata is a free-form JSON object, stored as an embedded document or
// null. It reads back as plain map[string]any / []any values (not bson.D,
// bson.M or bson.A), so callers can encode it as JSON or type-switch on it
// the same way whichever backend stored it.
type metadata map[string]any

func (m metadata) MarshalBSONValue() (byte, []byte, error) {
	if m == nil {
		return byte(bson.TypeNull), nil, nil
	}
	t, b, err := bson.MarshalValue(map[string]any(m))
	return byte(t), b, err
}

func (m *metadata) UnmarshalBSONValue(typ byte, data []byte) error {
	v := bson.RawValue{Type: bson.Type(typ), Value: data}
	switch v.Type {
	case bson.TypeNull, bson.TypeUndefined:
		*m = nil
		return nil
	case bson.TypeEmbeddedDocument:
		doc, err := plainDocument(v.Document())
		if err != nil {
			return fmt.Errorf("read metadata: %w", err)
		}
		*m = doc
		return nil
	default:
		return fmt.Errorf("read metadata: BSON type %s, want a document", v.Type)
	}
}

func plainDocument(doc bson.Raw) (map[string]any, error) {
	elems, err := doc.Elements()
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(elems))
	for _, e := range elems {
		v, err := plainValue(e.Value())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Key(), err)
		}
		out[e.Key()] = v
	}
	return out, nil
}

// plainValue converts one BSON value to the Go value encoding/json would
// produce for it (numbers keep their integer or float kind).
func plainValue(v bson.RawValue) (any, error) {
	switch v.Type {
	case bson.TypeNull, bson.TypeUndefined:
		return nil, nil
	case bson.TypeString:
		return v.StringValue(), nil
	case bson.TypeBoolean:
		return v.Boolean(), nil
	case bson.TypeInt32:
		return int64(v.Int32()), nil
	case bson.TypeInt64:
		return v.Int64(), nil
	case bson.TypeDouble:
		return v.Double(), nil
	case bson.TypeDateTime:
		return v.Time().UTC(), nil
	case bson.TypeObjectID:
		return v.ObjectID().Hex(), nil
	case bson.TypeDecimal128:
		return v.Decimal128().String(), nil
	case bson.TypeEmbeddedDocument:
		return plainDocument(v.Document())
	case bson.TypeArray:
		vals, err := v.Array().Values()
		if err != nil {
			return nil, err
		}
		out := make([]any, len(vals))
		for i, x := range vals {
			if out[i], err = plainValue(x); err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return out, nil
	default:
		// Binary, regex and the like never come from JSON; keep the
		// driver's own decoding of them.
		var out any
		if err := v.Unmarshal(&out); err != nil {
			return nil, err
		}
		return out, nil
	}
}
