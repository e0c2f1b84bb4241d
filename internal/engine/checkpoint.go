package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
)

// A checkpoint is written with every transition, so its size is paid once
// per step. In main, a step's input is the previous step's output (step 0's
// the execution's input) and `last` the last step's output; a step's output
// is also in that step's transition. encodeCheckpoint writes such repeats as
// references ("chained", "from_input", "last_chained", "last_input",
// "output_ref": a transition seq) instead of copies, and takes each value's
// JSON from the run's memo (encoded once per run, not once per step). Without
// references a step's big output (the doc list) was rewritten with every
// later step. UnmarshalJSON reads both this form and the plain one
// (json.Marshal of a checkpoint); resolve puts the referenced values back.

// ckLinks are the references of a decoded checkpoint, pending resolve.
type ckLinks struct {
	chained    []bool // per step: the input is the previous step's output
	fromInput  bool   // step 0's input is the execution's input
	lastChain  bool   // last is the last step's output
	lastInput  bool   // last is the execution's input
	hasOutRefs bool   // some step's output is only in its transition
}

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
		switch {
		case i > 0 && sameValue(s.Input, ck.Steps[i-1].Output):
			b.WriteString(`"chained":true`)
		case i == 0 && x.ex != nil && sameValue(s.Input, x.ex.Input):
			b.WriteString(`"from_input":true`)
		default:
			b.WriteString(`"input":`)
			if err := x.writeJSON(&b, s.Input); err != nil {
				return nil, fmt.Errorf("step %d input: %w", i, err)
			}
		}
		if s.Ref > 0 {
			b.WriteString(`,"output_ref":`)
			b.WriteString(strconv.Itoa(s.Ref))
		} else {
			b.WriteString(`,"output":`)
			if err := x.writeJSON(&b, s.Output); err != nil {
				return nil, fmt.Errorf("step %d output: %w", i, err)
			}
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
	n := len(ck.Steps)
	switch {
	case n > 0 && sameValue(ck.Last, ck.Steps[n-1].Output):
		b.WriteString(`,"last_chained":true`)
	case n == 0 && x.ex != nil && sameValue(ck.Last, x.ex.Input):
		b.WriteString(`,"last_input":true`)
	default:
		b.WriteString(`,"last":`)
		if err := x.writeJSON(&b, ck.Last); err != nil {
			return nil, fmt.Errorf("last: %w", err)
		}
	}
	for _, f := range []struct {
		name string
		v    any
	}{{"state", ck.State}, {"waiting", ck.Waiting}, {"resumes", ck.Resumes}, {"steps_run", ck.StepsRun}, {"run_ns", ck.RunNanos}} {
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

// UnmarshalJSON reads a checkpoint in either form; a compact one still
// needs resolve.
func (c *checkpoint) UnmarshalJSON(data []byte) error {
	var w struct {
		Step  int `json:"step"`
		Steps []struct {
			Input     any    `json:"input"`
			Chained   bool   `json:"chained"`
			FromInput bool   `json:"from_input"`
			Output    any    `json:"output"`
			OutputRef int    `json:"output_ref"`
			Label     string `json:"label"`
		} `json:"steps"`
		Last        any            `json:"last"`
		LastChained bool           `json:"last_chained"`
		LastInput   bool           `json:"last_input"`
		State       map[string]any `json:"state"`
		Waiting     string         `json:"waiting"`
		Resumes     map[string]any `json:"resumes"`
		StepsRun    int            `json:"steps_run"`
		RunNanos    int64          `json:"run_ns"`
	}
	// Numbers stay json.Number: a step's whole-float output (2.0) must
	// reach the next step as a float, as in Julep.
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	*c = checkpoint{Step: w.Step, Last: w.Last, State: w.State, Waiting: w.Waiting, Resumes: w.Resumes,
		StepsRun: w.StepsRun, RunNanos: w.RunNanos}
	l := &ckLinks{lastChain: w.LastChained, lastInput: w.LastInput}
	if w.Steps != nil {
		c.Steps = make([]stepRecord, len(w.Steps))
		l.chained = make([]bool, len(w.Steps))
	}
	for i, s := range w.Steps {
		switch {
		case s.Chained && i == 0:
			return fmt.Errorf("step 0 cannot be chained")
		case s.FromInput && i > 0:
			return fmt.Errorf("only step 0 can take the execution's input, not step %d", i)
		case s.OutputRef < 0:
			return fmt.Errorf("step %d: output_ref %d is not a transition", i, s.OutputRef)
		}
		c.Steps[i] = stepRecord{Input: s.Input, Output: s.Output, Label: s.Label, Ref: s.OutputRef}
		l.chained[i] = s.Chained
		l.fromInput = l.fromInput || s.FromInput
		l.hasOutRefs = l.hasOutRefs || s.OutputRef > 0
	}
	switch {
	case w.LastChained && len(c.Steps) == 0:
		return fmt.Errorf("last_chained without steps")
	case w.LastInput && len(c.Steps) > 0:
		return fmt.Errorf("last_input after a step")
	}
	c.links = l
	if l.hasOutRefs || l.fromInput || l.lastInput {
		return nil // resolve finishes it
	}
	return c.resolveWith(nil, nil)
}

// resolve puts back what a decoded compact checkpoint refers to: the
// execution's input and the outputs kept in its transitions.
func (c *checkpoint) resolve(ctx context.Context, ex *Execution, st State) error {
	if c.links == nil {
		return nil
	}
	var outputs map[int]any
	if c.links.hasOutRefs {
		trs, err := st.ListTransitions(ctx, ex.ID, 0, 0, false)
		if err != nil {
			return fmt.Errorf("read the transitions it refers to: %w", err)
		}
		outputs = make(map[int]any, len(trs))
		for _, tr := range trs {
			outputs[tr.Seq] = tr.Output
		}
	}
	return c.resolveWith(ex.Input, outputs)
}

// resolveWith replaces the links with the values they name.
func (c *checkpoint) resolveWith(input any, outputs map[int]any) error {
	l := c.links
	if l == nil {
		return nil
	}
	for i := range c.Steps {
		s := &c.Steps[i]
		if s.Ref > 0 {
			v, ok := outputs[s.Ref]
			if !ok {
				return fmt.Errorf("step %d refers to transition %d, which does not exist", i, s.Ref)
			}
			s.Output = v
		}
		switch {
		case l.chained[i]:
			s.Input = c.Steps[i-1].Output
		case i == 0 && l.fromInput:
			s.Input = input
		}
	}
	switch {
	case l.lastChain:
		c.Last = c.Steps[len(c.Steps)-1].Output
	case l.lastInput:
		c.Last = input
	}
	c.links = nil
	return nil
}
