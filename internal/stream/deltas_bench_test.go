package stream

import (
	"fmt"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

// BenchmarkDeltaReaderWindow is the feed's steady cost of sharing deltas:
// one Read that re-reads a window holding rows deltas (all sent already,
// so the hub drops them), as every API instance does each poll while
// replies stream. Prints the rows re-read per op.
func BenchmarkDeltaReaderWindow(b *testing.B) {
	for _, rows := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			st := openStore(b)
			hub := NewHub(Options{})
			// A window long enough that every Read re-reads all rows.
			r := &DeltaReader{Store: st, Hub: hub, Window: time.Hour}
			ctx := b.Context()
			if err := r.Read(ctx); err != nil {
				b.Fatal(err)
			}
			for i := 0; i < rows; i += responder.MaxDeltaBatch {
				var ds []responder.Delta
				for j := i; j < min(rows, i+responder.MaxDeltaBatch); j++ {
					ds = append(ds, responder.Delta{UserID: fmt.Sprint("u", j%100), ExecutionID: fmt.Sprint("x", j%100), Index: j / 100, Text: "word "})
				}
				if _, err := st.AppendDeltas(ctx, ds); err != nil {
					b.Fatal(err)
				}
			}
			if err := r.Read(ctx); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if err := r.Read(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows), "rows/op")
		})
	}
}
