package julep

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// The contract test checks api/julep.yaml (our subset, as the v1 server
// behaves) against Julep's published spec: every operation, parameter and
// request/response field of ours must exist upstream with a compatible type,
// except where FACTS.md records that the server and the spec disagree. Those
// cases are listed below, each with its reason, and an exception that no
// longer applies fails the test so the table cannot rot.

// deviation describes how one of our operations knowingly differs upstream.
type deviation struct {
	why string
	// extension: the operation is Astra's own; upstream must NOT have it.
	extension bool
	// upstreamPath: upstream's path for this operation, when it differs.
	upstreamPath string
	// pathParams maps our path parameter names to upstream's (with upstreamPath).
	pathParams map[string]string
	// status maps one of our success statuses to upstream's.
	status map[string]string
	// metadataFilterKeys: we send metadata_filter.<key>=<value> query keys
	// where upstream declares one metadata_filter object parameter.
	metadataFilterKeys bool
	// requestUnder: upstream wraps our request body in this property.
	requestUnder string
	// requestSchemas: upstream's body is a discriminated union; compare our
	// body with the union of these component schemas.
	requestSchemas []string
	// nullResponse: the server answers null where upstream declares a body.
	nullResponse bool
	// responseItemsUnder: upstream nests our items[] one level deeper, as
	// items[].<this>[].
	responseItemsUnder string
	// responseUnwrapped: we get a plain array where upstream declares {items}.
	responseUnwrapped bool
}

const metadataFilterWhy = "FACTS 6: list filters are metadata_filter.<key>=<value> query keys (the spec declares one metadata_filter object)"

var deviations = map[string]*deviation{
	"POST /users/{}":  {why: "FACTS 1: create-or-update answers 201 (spec: 200)", status: map[string]string{"201": "200"}},
	"POST /agents/{}": {why: "FACTS 1: create-or-update answers 201 (spec: 200)", status: map[string]string{"201": "200"}},
	"PUT /executions/{}": {why: "FACTS 2: cancel/resume answer 200 with a null body; the spec's body is a union on status whose variants carry reason and input",
		nullResponse: true, requestSchemas: []string{"Executions.UpdateExecutionRequest", "Executions.StopExecutionRequest", "Executions.ResumeExecutionRequest"}},
	"POST /users/{}/search": {why: "FACTS 3: the server takes the search object itself (spec: wrapped in {\"body\": ...})", requestUnder: "body"},
	"GET /executions/{}/transitions": {why: "FACTS 4: the server answers {items: [Transition]} (spec: items[].transitions[])",
		responseItemsUnder: "transitions"},
	"GET /users":                       {why: metadataFilterWhy, metadataFilterKeys: true},
	"GET /users/{}/docs":               {why: metadataFilterWhy, metadataFilterKeys: true},
	"GET /agents":                      {why: metadataFilterWhy, metadataFilterKeys: true},
	"GET /agents/{}/tasks":             {why: metadataFilterWhy, metadataFilterKeys: true},
	"GET /executions/{}/deltas.stream": {why: "Astra extension: token deltas of a running prompt step; a real Julep answers 404", extension: true},
	// Secrets: the v1 server's routes (routers/secrets) are developer-scoped
	// /secrets and /secrets/{secret_id}; the spec nests them under a parent id.
	"GET /secrets": {why: "server route GET /secrets answers a plain list (spec: GET /secrets/{id} answering {items})",
		upstreamPath: "/secrets/{id}", responseUnwrapped: true},
	"POST /secrets": {why: "server route POST /secrets answers 200 (spec: POST /secrets/{id} answering 201)",
		upstreamPath: "/secrets/{id}", status: map[string]string{"200": "201"}},
	"PUT /secrets/{}": {why: "server route PUT /secrets/{secret_id} (spec: /secrets/{id}/{child_id})",
		upstreamPath: "/secrets/{id}/{child_id}", pathParams: map[string]string{"secret_id": "child_id"}},
	"DELETE /secrets/{}": {why: "server route DELETE /secrets/{secret_id} (spec: /secrets/{id}/{child_id})",
		upstreamPath: "/secrets/{id}/{child_id}", pathParams: map[string]string{"secret_id": "child_id"}},
}

func upstreamSpecPath(t *testing.T) string {
	return filepath.Join(repoRoot(t), "..", "shared", "reference", "julep", "openapi-1.0.0.yaml")
}

func loadSpec(t *testing.T, path string) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	return doc
}

// TestOurSpecIsValid needs no upstream file: api/julep.yaml must be valid
// OpenAPI 3.0, and every operation must declare the error body.
func TestOurSpecIsValid(t *testing.T) {
	t.Parallel()
	ours := loadSpec(t, filepath.Join(repoRoot(t), "api", "julep.yaml"))
	if err := ours.Validate(context.Background()); err != nil {
		t.Fatalf("api/julep.yaml is not valid OpenAPI: %v", err)
	}
	for path, item := range ours.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Responses.Value("default") == nil {
				t.Errorf("%s %s: no default (error) response", method, path)
			}
		}
	}
}

func TestContractWithUpstreamSpec(t *testing.T) {
	t.Parallel()
	upPath := upstreamSpecPath(t)
	if _, err := os.Stat(upPath); err != nil {
		t.Skipf("upstream Julep spec not found at %s (it lives beside the repository, in shared/reference/julep): %v", upPath, err)
	}
	ours := loadSpec(t, filepath.Join(repoRoot(t), "api", "julep.yaml"))
	up := loadSpec(t, upPath)

	// Normalised path -> upstream paths: the spec spells one route shape with
	// different parameter names per method (/agents/{id}/tasks/{child_id} and
	// /agents/{parent_id}/tasks/{id}).
	upByShape := map[string][]string{}
	for p := range up.Paths.Map() {
		upByShape[normPath(p)] = append(upByShape[normPath(p)], p)
	}
	used := map[string]bool{}
	paths := sortedPaths(ours)
	for _, path := range paths {
		item := ours.Paths.Value(path)
		for _, method := range sortedMethods(item) {
			op := item.GetOperation(method)
			key := method + " " + normPath(path)
			dev := deviations[key]
			if dev == nil {
				dev = &deviation{}
			} else {
				used[key] = true
			}
			t.Run(key, func(t *testing.T) {
				checkOperation(t, up, upByShape, path, method, item, op, dev)
			})
		}
	}
	for key := range deviations {
		if !used[key] {
			t.Errorf("deviation %q matches no operation of api/julep.yaml: remove it", key)
		}
	}
}

func checkOperation(t *testing.T, up *openapi3.T, upByShape map[string][]string, path, method string, item *openapi3.PathItem, op *openapi3.Operation, dev *deviation) {
	candidates := upByShape[normPath(path)]
	if dev.upstreamPath != "" {
		candidates = []string{dev.upstreamPath}
	}
	var upPath string
	var upItem *openapi3.PathItem
	var upOp *openapi3.Operation
	for _, p := range candidates {
		if it := up.Paths.Value(p); it != nil && it.GetOperation(method) != nil {
			upPath, upItem, upOp = p, it, it.GetOperation(method)
			break
		}
	}
	isExt, _ := op.Extensions["x-astra-extension"].(bool)
	if dev.extension != isExt {
		t.Errorf("x-astra-extension is %v but the deviation table says %v", isExt, dev.extension)
	}
	if dev.extension {
		if upOp != nil {
			t.Errorf("marked as an Astra extension, but upstream has %s %s", method, upPath)
		}
		return
	}
	if upOp == nil {
		t.Fatalf("upstream has no %s %s", method, path)
	}
	if dev.upstreamPath != "" && slices.ContainsFunc(upByShape[normPath(path)], func(p string) bool {
		return up.Paths.Value(p).GetOperation(method) != nil
	}) {
		t.Errorf("upstream now has %s itself: the upstreamPath deviation is stale", path)
	}

	// Parameters.
	hasFilter, _ := op.Extensions["x-astra-metadata-filter"].(bool)
	if hasFilter != dev.metadataFilterKeys {
		t.Errorf("x-astra-metadata-filter is %v but the deviation table says %v", hasFilter, dev.metadataFilterKeys)
	}
	upParams := params(upItem, upOp)
	if dev.metadataFilterKeys && findParam(upParams, "query", "metadata_filter") == nil {
		t.Error("upstream declares no metadata_filter for this list")
	}
	ourPath := pathParamNames(path)
	theirPath := pathParamNames(upPath)
	for _, p := range params(item, op) {
		if ext, _ := p.Extensions["x-astra-extension"].(bool); ext {
			// Our own optional addition, which a real Julep ignores.
			if p.Required {
				t.Errorf("extension parameter %s %q is required: a real Julep would not know it", p.In, p.Name)
			}
			continue
		}
		var their *openapi3.Parameter
		if p.In == "path" {
			name := ""
			if dev.pathParams != nil {
				name = dev.pathParams[p.Name]
			} else if i := slices.Index(ourPath, p.Name); i >= 0 && i < len(theirPath) {
				name = theirPath[i]
			}
			their = findParam(upParams, "path", name)
		} else {
			their = findParam(upParams, p.In, p.Name)
		}
		if their == nil {
			t.Errorf("parameter %s %q is not upstream", p.In, p.Name)
			continue
		}
		reportSchema(t, "parameter "+p.Name, p.Schema, their.Schema)
	}

	// Request body.
	if op.RequestBody != nil {
		if upOp.RequestBody == nil {
			t.Error("we send a body; upstream takes none")
		} else {
			for ct, mt := range op.RequestBody.Value.Content {
				upMT := upOp.RequestBody.Value.Content.Get(ct)
				if upMT == nil {
					t.Errorf("request content type %s is not upstream", ct)
					continue
				}
				theirs := upMT.Schema
				switch {
				case dev.requestUnder != "":
					theirs = property(theirs, dev.requestUnder)
					if theirs == nil {
						t.Errorf("upstream request has no %q wrapper: deviation stale", dev.requestUnder)
						continue
					}
				case dev.requestSchemas != nil:
					theirs = unionOf(t, up, dev.requestSchemas)
				}
				reportSchema(t, "request "+ct, mt.Schema, theirs)
			}
		}
	}

	// Success responses (upstream declares no error bodies; ours follow FACTS "Errors").
	for code, resp := range op.Responses.Map() {
		if code == "default" {
			continue
		}
		upCode := code
		if mapped, ok := dev.status[code]; ok {
			if upOp.Responses.Value(code) != nil {
				t.Errorf("upstream now declares %s: the status deviation is stale", code)
			}
			upCode = mapped
		}
		upResp := upOp.Responses.Value(upCode)
		if upResp == nil {
			t.Errorf("response %s is not upstream", code)
			continue
		}
		for ct, mt := range resp.Value.Content {
			upMT := upResp.Value.Content.Get(ct)
			if upMT == nil {
				t.Errorf("response %s content type %s is not upstream", code, ct)
				continue
			}
			theirs := upMT.Schema
			switch {
			case dev.nullResponse:
				continue
			case dev.responseItemsUnder != "":
				// ours: {items: [X]}; theirs: {items: [{<under>: [X]}]}
				inner := property(items(property(theirs, "items")), dev.responseItemsUnder)
				if inner == nil {
					t.Errorf("upstream has no items[].%s: deviation stale", dev.responseItemsUnder)
					continue
				}
				reportSchema(t, "response items", items(property(mt.Schema, "items")), items(inner))
				continue
			case dev.responseUnwrapped:
				theirs = property(theirs, "items")
				if theirs == nil {
					t.Error("upstream list is not wrapped in items: deviation stale")
					continue
				}
			}
			reportSchema(t, "response "+code, mt.Schema, theirs)
		}
	}
}

// ---- schema compatibility

func reportSchema(t *testing.T, what string, ours, theirs *openapi3.SchemaRef) {
	t.Helper()
	for _, p := range compatible(what, ours, theirs, 0) {
		t.Error(p)
	}
}

// compatible lists where a value valid for ours would not fit theirs: a
// field theirs lacks, a different type, an enum value theirs does not allow.
// Formats, bounds and required-ness are not compared: the server, not the
// spec, decides those (FACTS 5).
func compatible(at string, oursRef, theirsRef *openapi3.SchemaRef, depth int) []string {
	if oursRef == nil || oursRef.Value == nil {
		return nil
	}
	if theirsRef == nil || theirsRef.Value == nil {
		return []string{at + ": not upstream"}
	}
	if depth > 20 {
		return nil
	}
	ours, theirs := flatten(oursRef.Value), flatten(theirsRef.Value)

	if alts := append(slices.Clone(ours.AnyOf), ours.OneOf...); len(alts) > 0 {
		var out []string
		for i, alt := range alts {
			out = append(out, compatible(fmt.Sprintf("%s(variant %d)", at, i), alt, &openapi3.SchemaRef{Value: theirs}, depth+1)...)
		}
		return out
	}
	if alts := append(slices.Clone(theirs.AnyOf), theirs.OneOf...); len(alts) > 0 && typeOf(theirs) == "" {
		var best []string
		for i, alt := range alts {
			p := compatible(at, &openapi3.SchemaRef{Value: ours}, alt, depth+1)
			if len(p) == 0 {
				return nil
			}
			if i == 0 || len(p) < len(best) {
				best = p
			}
		}
		return append([]string{at + ": matches no upstream variant; against the closest:"}, best...)
	}

	ot, tt := typeOf(ours), typeOf(theirs)
	if ot == "" || tt == "" {
		return nil // free-form on either side
	}
	if ot != tt && !(ot == "integer" && tt == "number") {
		return []string{fmt.Sprintf("%s: type %s, upstream %s", at, ot, tt)}
	}
	var out []string
	if len(ours.Enum) > 0 && len(theirs.Enum) > 0 {
		for _, v := range ours.Enum {
			if !slices.Contains(theirs.Enum, v) {
				out = append(out, fmt.Sprintf("%s: enum value %v not upstream %v", at, v, theirs.Enum))
			}
		}
	}
	switch ot {
	case "object":
		names := make([]string, 0, len(ours.Properties))
		for name := range ours.Properties {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			tp := theirs.Properties[name]
			if tp == nil {
				out = append(out, fmt.Sprintf("%s.%s: field not upstream", at, name))
				continue
			}
			out = append(out, compatible(at+"."+name, ours.Properties[name], tp, depth+1)...)
		}
		if ap := ours.AdditionalProperties.Schema; ap != nil && theirs.AdditionalProperties.Schema != nil {
			out = append(out, compatible(at+".<additional>", ap, theirs.AdditionalProperties.Schema, depth+1)...)
		}
	case "array":
		out = append(out, compatible(at+"[]", ours.Items, theirs.Items, depth+1)...)
	}
	return out
}

// flatten merges allOf members into one schema (properties, type, enum,
// items, alternatives), which is how both specs use allOf.
func flatten(s *openapi3.Schema) *openapi3.Schema {
	if len(s.AllOf) == 0 {
		return s
	}
	out := *s
	out.AllOf = nil
	out.Properties = openapi3.Schemas{}
	for name, p := range s.Properties {
		out.Properties[name] = p
	}
	for _, m := range s.AllOf {
		if m == nil || m.Value == nil {
			continue
		}
		f := flatten(m.Value)
		if out.Type == nil || len(out.Type.Slice()) == 0 {
			out.Type = f.Type
		}
		if len(out.Enum) == 0 {
			out.Enum = f.Enum
		}
		if out.Items == nil {
			out.Items = f.Items
		}
		if len(out.AnyOf) == 0 {
			out.AnyOf = f.AnyOf
		}
		if len(out.OneOf) == 0 {
			out.OneOf = f.OneOf
		}
		if out.AdditionalProperties.Schema == nil {
			out.AdditionalProperties = f.AdditionalProperties
		}
		for name, p := range f.Properties {
			if _, ok := out.Properties[name]; !ok {
				out.Properties[name] = p
			}
		}
	}
	return &out
}

func typeOf(s *openapi3.Schema) string {
	if ts := s.Type.Slice(); len(ts) > 0 {
		return ts[0]
	}
	switch {
	case len(s.Properties) > 0:
		return "object"
	case s.Items != nil:
		return "array"
	}
	return ""
}

// unionOf merges upstream component schemas into one object (properties and
// enum values of all), to compare a body against a discriminated union.
func unionOf(t *testing.T, up *openapi3.T, names []string) *openapi3.SchemaRef {
	t.Helper()
	u := &openapi3.Schema{Type: &openapi3.Types{"object"}, Properties: openapi3.Schemas{}}
	enums := map[string][]any{}
	for _, n := range names {
		ref := up.Components.Schemas[n]
		if ref == nil || ref.Value == nil {
			t.Fatalf("upstream has no schema %s", n)
		}
		f := flatten(ref.Value)
		for name, p := range f.Properties {
			if p.Value != nil && len(p.Value.Enum) > 0 {
				enums[name] = append(enums[name], p.Value.Enum...)
			}
			if _, ok := u.Properties[name]; !ok {
				u.Properties[name] = p
			}
		}
	}
	for name, vals := range enums {
		cp := *u.Properties[name].Value
		cp.Enum = vals
		u.Properties[name] = &openapi3.SchemaRef{Value: &cp}
	}
	return &openapi3.SchemaRef{Value: u}
}

func property(ref *openapi3.SchemaRef, name string) *openapi3.SchemaRef {
	if ref == nil || ref.Value == nil {
		return nil
	}
	return flatten(ref.Value).Properties[name]
}

func items(ref *openapi3.SchemaRef) *openapi3.SchemaRef {
	if ref == nil || ref.Value == nil {
		return nil
	}
	return flatten(ref.Value).Items
}

// ---- paths and parameters

var paramInPath = regexp.MustCompile(`\{[^}]+\}`)

func normPath(p string) string { return paramInPath.ReplaceAllString(p, "{}") }

func pathParamNames(p string) []string {
	var names []string
	for _, m := range paramInPath.FindAllString(p, -1) {
		names = append(names, strings.Trim(m, "{}"))
	}
	return names
}

// params lists an operation's parameters, path-level ones included.
func params(item *openapi3.PathItem, op *openapi3.Operation) []*openapi3.Parameter {
	var out []*openapi3.Parameter
	for _, list := range []openapi3.Parameters{item.Parameters, op.Parameters} {
		for _, p := range list {
			if p != nil && p.Value != nil {
				out = append(out, p.Value)
			}
		}
	}
	return out
}

func findParam(ps []*openapi3.Parameter, in, name string) *openapi3.Parameter {
	for _, p := range ps {
		if p.In == in && p.Name == name {
			return p
		}
	}
	return nil
}

func sortedPaths(doc *openapi3.T) []string {
	var ps []string
	for p := range doc.Paths.Map() {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

func sortedMethods(item *openapi3.PathItem) []string {
	var ms []string
	for m := range item.Operations() {
		ms = append(ms, m)
	}
	sort.Strings(ms)
	return ms
}

// TestCompatibleCatchesMismatches makes sure the checker itself can fail.
func TestCompatibleCatchesMismatches(t *testing.T) {
	t.Parallel()
	obj := func(props map[string]*openapi3.Schema) *openapi3.SchemaRef {
		s := &openapi3.Schema{Type: &openapi3.Types{"object"}, Properties: openapi3.Schemas{}}
		for k, v := range props {
			s.Properties[k] = &openapi3.SchemaRef{Value: v}
		}
		return &openapi3.SchemaRef{Value: s}
	}
	str := &openapi3.Schema{Type: &openapi3.Types{"string"}}
	num := &openapi3.Schema{Type: &openapi3.Types{"number"}}
	integer := &openapi3.Schema{Type: &openapi3.Types{"integer"}}
	enumAB := &openapi3.Schema{Type: &openapi3.Types{"string"}, Enum: []any{"a", "b"}}
	enumAC := &openapi3.Schema{Type: &openapi3.Types{"string"}, Enum: []any{"a", "c"}}
	theirs := obj(map[string]*openapi3.Schema{"name": str, "n": num, "kind": enumAB})
	for _, tc := range []struct {
		ours *openapi3.SchemaRef
		ok   bool
	}{
		{obj(map[string]*openapi3.Schema{"name": str, "n": integer}), true},
		{obj(map[string]*openapi3.Schema{"extra": str}), false},
		{obj(map[string]*openapi3.Schema{"name": num}), false},
		{obj(map[string]*openapi3.Schema{"kind": enumAC}), false},
		{obj(map[string]*openapi3.Schema{"kind": enumAB}), true},
	} {
		p := compatible("x", tc.ours, theirs, 0)
		if (len(p) == 0) != tc.ok {
			t.Errorf("ours %v: problems %v, want ok=%v", tc.ours.Value.Properties, p, tc.ok)
		}
	}
}
