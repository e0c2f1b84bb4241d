package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// A checkpoint is written with every transition, so its size is paid once
// per step. In main, a step's input is always the previous step's output and
// `last` the last step's output; encodeCheckpoint writes such a repeat as a
// flag ("chained", "last_chained") instead of a second copy, and takes each
// value's JSON from the run's memo (encoded once per run, not once per
// step). UnmarshalJSON reads both this form and the plain one
// (json.Marshal of a checkpoint), which every reader accepts.

// encodeCheckpoint encodes x.ck compactly.
func (x *executor) encodeCheckpoint() ([]byte, error) {
	ck := &x.ck
	var b bytes.Buffer
	b.WriteString(`{"step":`)
	b.WriteString(strconv.Itoa(ck.Step))
	b.WriteString(`,"steps":[`)
	for i, s := range ck.Steps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('{')
		if i > 0 && sameValue(s.Input, ck.Steps[i-1].Output) {
			b.WriteString(`"chained":true`)
		} else {
			b.WriteString(`"input":`)
			if err := x.writeJSON(&b, s.Input); err != nil {
				return nil, fmt.Errorf("step %d input: %w", i, err)
			}
		}
		b.WriteString(`,"output":`)
		if err := x.writeJSON(&b, s.Output); err != nil {
			return nil, fmt.Errorf("step %d output: %w", i, err)
		}
		if s.Label != "" {
			b.WriteString(`,"label":`)
			if err := x.writeJSON(&b, s.Label); err != nil {
				return nil, err
			}
		}
		b.WriteByte('}')
	}
	b.WriteByte(']')
	if n := len(ck.Steps); n > 0 && sameValue(ck.Last, ck.Steps[n-1].Output) {
		b.WriteString(`,"last_chained":true`)
	} else {
		b.WriteString(`,"last":`)
		if err := x.writeJSON(&b, ck.Last); err != nil {
			return nil, fmt.Errorf("last: %w", err)
		}
	}
	for _, f := range []struct {
		name string
		v    any
	}{{"state", ck.State}, {"waiting", ck.Waiting}, {"resumes", ck.Resumes}} {
		b.WriteString(`,"` + f.name + `":`)
		raw, err := json.Marshal(f.v) // these change between steps: no memo
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		b.Write(raw)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (x *executor) writeJSON(b *bytes.Buffer, v any) error {
	raw, err := x.mem.json(v)
	if err != nil {
		return err
	}
	b.Write(raw)
	return nil
}

// sameValue reports whether a and b are the same value: the same map or
// slice (by identity), or equal scalars.
func sameValue(a, b any) bool {
	if ia, ok := identityOf(a); ok {
		ib, ok := identityOf(b)
		return ok && ia == ib
	}
	switch a := a.(type) {
	case nil:
		return b == nil
	case string, bool, float64, int64, int:
		return a == b
	}
	return false
}

// UnmarshalJSON reads a checkpoint in either form.
func (c *checkpoint) UnmarshalJSON(data []byte) error {
	var w struct {
		Step  int `json:"step"`
		Steps []struct {
			Input   any    `json:"input"`
			Chained bool   `json:"chained"`
			Output  any    `json:"output"`
			Label   string `json:"label"`
		} `json:"steps"`
		Last        any            `json:"last"`
		LastChained bool           `json:"last_chained"`
		State       map[string]any `json:"state"`
		Waiting     string         `json:"waiting"`
		Resumes     map[string]any `json:"resumes"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*c = checkpoint{Step: w.Step, Last: w.Last, State: w.State, Waiting: w.Waiting, Resumes: w.Resumes}
	if w.Steps != nil {
		c.Steps = make([]stepRecord, len(w.Steps))
	}
	for i, s := range w.Steps {
		in := s.Input
		if s.Chained {
			if i == 0 {
				return fmt.Errorf("step 0 cannot be chained")
			}
			in = c.Steps[i-1].Output
		}
		c.Steps[i] = stepRecord{Input: in, Output: s.Output, Label: s.Label}
	}
	if w.LastChained {
		if len(c.Steps) == 0 {
			return fmt.Errorf("last_chained without steps")
		}
		c.Last = c.Steps[len(c.Steps)-1].Output
	}
	return nil
}
