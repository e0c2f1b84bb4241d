package expr

// FreeNames returns the names a task string reads that are neither Python
// builtins nor defined inside it (lambda parameters, comprehension
// variables): the task variables it expects (`_`, `steps`, `inputs`, ...).
// A validator compares them with the variables an execution provides, so an
// undefined name is caught at create instead of when the step runs.
func FreeNames(s string) ([]string, error) {
	p, err := Compile(s)
	if err != nil {
		return nil, err
	}
	if p.c.literal != nil {
		return nil, nil
	}
	var out []string
	for _, n := range p.c.names {
		if _, ok := builtins[n]; !ok {
			out = append(out, n)
		}
	}
	return out, nil
}
