package expr

import (
	"fmt"
	"strings"
	"time"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// A small datetime: enough for timestamps in prompts and metadata
// (now/utcnow/fromisoformat, isoformat/strftime, arithmetic with timedelta).
// "Local" time is UTC: servers run in UTC and tasks should not depend on it.

type datetimeValue struct {
	t        time.Time
	aware    bool
	dateOnly bool
}

func newDatetime(t time.Time, aware bool) *datetimeValue { return &datetimeValue{t: t, aware: aware} }

func (d *datetimeValue) Type() string {
	if d.dateOnly {
		return "date"
	}
	return "datetime"
}
func (d *datetimeValue) Freeze()               {}
func (d *datetimeValue) Truth() starlark.Bool  { return true }
func (d *datetimeValue) Hash() (uint32, error) { return uint32(d.t.UnixNano()), nil }
func (d *datetimeValue) String() string {
	if d.dateOnly {
		return d.t.Format("2006-01-02")
	}
	return d.iso(" ")
}

func (d *datetimeValue) isoformat() string {
	if d.dateOnly {
		return d.t.Format("2006-01-02")
	}
	return d.iso("T")
}

func (d *datetimeValue) iso(sep string) string {
	s := d.t.Format("2006-01-02" + sep + "15:04:05")
	if us := d.t.Nanosecond() / 1000; us != 0 {
		s += fmt.Sprintf(".%06d", us)
	}
	if d.aware {
		s += d.t.Format("-07:00")
	}
	return s
}

func (d *datetimeValue) strftime(f string) (string, error) { return strftime(d.t, f) }

func (d *datetimeValue) CompareSameType(op syntax.Token, y starlark.Value, depth int) (bool, error) {
	return threewayCompare(op, int64(d.t.Compare(y.(*datetimeValue).t)))
}

func (d *datetimeValue) Binary(op syntax.Token, y starlark.Value, side starlark.Side) (starlark.Value, error) {
	switch o := y.(type) {
	case *timedeltaValue:
		if op == syntax.PLUS {
			return &datetimeValue{t: d.t.Add(o.d), aware: d.aware, dateOnly: d.dateOnly}, nil
		}
		if op == syntax.MINUS && side == starlark.Left {
			return &datetimeValue{t: d.t.Add(-o.d), aware: d.aware, dateOnly: d.dateOnly}, nil
		}
	case *datetimeValue:
		if op == syntax.MINUS {
			if side == starlark.Left {
				return &timedeltaValue{d.t.Sub(o.t)}, nil
			}
			return &timedeltaValue{o.t.Sub(d.t)}, nil
		}
	}
	return nil, nil
}

func (d *datetimeValue) AttrNames() []string {
	return []string{"date", "day", "hour", "isoformat", "isoweekday", "microsecond", "minute", "month", "replace", "second", "strftime", "timestamp", "weekday", "year"}
}

func (d *datetimeValue) Attr(name string) (starlark.Value, error) {
	i := func(n int) (starlark.Value, error) { return starlark.MakeInt(n), nil }
	m := func(f func(args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error)) (starlark.Value, error) {
		return starlark.NewBuiltin(name, func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			return f(args, kw)
		}), nil
	}
	switch name {
	case "year":
		return i(d.t.Year())
	case "month":
		return i(int(d.t.Month()))
	case "day":
		return i(d.t.Day())
	case "hour":
		return i(d.t.Hour())
	case "minute":
		return i(d.t.Minute())
	case "second":
		return i(d.t.Second())
	case "microsecond":
		return i(d.t.Nanosecond() / 1000)
	case "isoformat":
		return m(func(args starlark.Tuple, _ []starlark.Tuple) (starlark.Value, error) {
			if len(args) == 1 {
				if sep, ok := args[0].(starlark.String); ok && !d.dateOnly {
					return starlark.String(d.iso(string(sep))), nil
				}
			}
			return starlark.String(d.isoformat()), nil
		})
	case "strftime":
		return m(func(args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			var f string
			if err := starlark.UnpackPositionalArgs("strftime", args, kw, 1, &f); err != nil {
				return nil, err
			}
			out, err := d.strftime(f)
			return starlark.String(out), err
		})
	case "timestamp":
		return m(func(starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
			return starlark.Float(float64(d.t.UnixNano()) / 1e9), nil
		})
	case "weekday":
		return m(func(starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
			return starlark.MakeInt((int(d.t.Weekday()) + 6) % 7), nil
		})
	case "isoweekday":
		return m(func(starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
			return starlark.MakeInt((int(d.t.Weekday())+6)%7 + 1), nil
		})
	case "tzname":
		return m(func(starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
			if d.aware {
				return starlark.String("UTC"), nil
			}
			return starlark.None, nil
		})
	case "date":
		return m(func(starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
			y, mo, dd := d.t.Date()
			return &datetimeValue{t: time.Date(y, mo, dd, 0, 0, 0, 0, time.UTC), dateOnly: true}, nil
		})
	case "replace":
		return m(func(args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			y, mo, dd := d.t.Date()
			h, mi, s := d.t.Clock()
			us := d.t.Nanosecond() / 1000
			mon := int(mo)
			if err := starlark.UnpackArgs("replace", args, kw, "year?", &y, "month?", &mon, "day?", &dd,
				"hour?", &h, "minute?", &mi, "second?", &s, "microsecond?", &us); err != nil {
				return nil, err
			}
			return &datetimeValue{t: time.Date(y, time.Month(mon), dd, h, mi, s, us*1000, d.t.Location()), aware: d.aware, dateOnly: d.dateOnly}, nil
		})
	}
	return nil, nil
}

type timedeltaValue struct{ d time.Duration }

func (t *timedeltaValue) Type() string          { return "timedelta" }
func (t *timedeltaValue) Freeze()               {}
func (t *timedeltaValue) Truth() starlark.Bool  { return t.d != 0 }
func (t *timedeltaValue) Hash() (uint32, error) { return uint32(t.d), nil }
func (t *timedeltaValue) String() string {
	d := t.d
	days := int64(d / (24 * time.Hour))
	rest := d - time.Duration(days)*24*time.Hour
	if rest < 0 {
		days--
		rest += 24 * time.Hour
	}
	secs := int64(rest / time.Second)
	us := int64(rest%time.Second) / 1000
	s := fmt.Sprintf("%d:%02d:%02d", secs/3600, secs/60%60, secs%60)
	if us != 0 {
		s += fmt.Sprintf(".%06d", us)
	}
	if days != 0 {
		unit := "days"
		if days == 1 || days == -1 {
			unit = "day"
		}
		s = fmt.Sprintf("%d %s, %s", days, unit, s)
	}
	return s
}

func (t *timedeltaValue) CompareSameType(op syntax.Token, y starlark.Value, depth int) (bool, error) {
	o := y.(*timedeltaValue)
	return threewayCompare(op, int64(t.d)-int64(o.d))
}

func threewayCompare(op syntax.Token, c int64) (bool, error) {
	switch op {
	case syntax.EQL:
		return c == 0, nil
	case syntax.NEQ:
		return c != 0, nil
	case syntax.LT:
		return c < 0, nil
	case syntax.LE:
		return c <= 0, nil
	case syntax.GT:
		return c > 0, nil
	case syntax.GE:
		return c >= 0, nil
	}
	return false, fmt.Errorf("unsupported comparison")
}

func (t *timedeltaValue) Binary(op syntax.Token, y starlark.Value, side starlark.Side) (starlark.Value, error) {
	if o, ok := y.(*timedeltaValue); ok {
		switch op {
		case syntax.PLUS:
			return &timedeltaValue{t.d + o.d}, nil
		case syntax.MINUS:
			if side == starlark.Left {
				return &timedeltaValue{t.d - o.d}, nil
			}
			return &timedeltaValue{o.d - t.d}, nil
		}
	}
	if f, ok := starlark.AsFloat(y); ok && op == syntax.STAR {
		return &timedeltaValue{time.Duration(float64(t.d) * f)}, nil
	}
	return nil, nil
}

func (t *timedeltaValue) AttrNames() []string {
	return []string{"days", "microseconds", "seconds", "total_seconds"}
}

func (t *timedeltaValue) Attr(name string) (starlark.Value, error) {
	days := int64(t.d / (24 * time.Hour))
	rest := t.d - time.Duration(days)*24*time.Hour
	if rest < 0 {
		days--
		rest += 24 * time.Hour
	}
	switch name {
	case "days":
		return starlark.MakeInt64(days), nil
	case "seconds":
		return starlark.MakeInt64(int64(rest / time.Second)), nil
	case "microseconds":
		return starlark.MakeInt64(int64(rest%time.Second) / 1000), nil
	case "total_seconds":
		return starlark.NewBuiltin("total_seconds", func(*starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error) {
			return starlark.Float(t.d.Seconds()), nil
		}), nil
	}
	return nil, nil
}

// tzValue is datetime.timezone.utc, the only time zone offered.
type tzValue struct{}

func (tzValue) String() string        { return "datetime.timezone.utc" }
func (tzValue) Type() string          { return "timezone" }
func (tzValue) Freeze()               {}
func (tzValue) Truth() starlark.Bool  { return true }
func (tzValue) Hash() (uint32, error) { return 0, nil }
func (tzValue) AttrNames() []string   { return []string{"utc"} }
func (tzValue) Attr(name string) (starlark.Value, error) {
	if name == "utc" {
		return tzValue{}, nil
	}
	return nil, nil
}

// dtClass is `datetime.datetime`: callable as a constructor and carrying the
// class methods (now, utcnow, fromisoformat, strptime).
type dtClass struct{ members starlark.StringDict }

func (c *dtClass) String() string        { return "<class 'datetime.datetime'>" }
func (c *dtClass) Type() string          { return "type" }
func (c *dtClass) Freeze()               {}
func (c *dtClass) Truth() starlark.Bool  { return true }
func (c *dtClass) Hash() (uint32, error) { return 1, nil }
func (c *dtClass) Name() string          { return "datetime" }
func (c *dtClass) AttrNames() []string   { return c.members.Keys() }
func (c *dtClass) Attr(name string) (starlark.Value, error) {
	return c.members[name], nil
}
func (c *dtClass) CallInternal(_ *starlark.Thread, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var y, mo, d int
	h, mi, s, us := 0, 0, 0, 0
	var tz starlark.Value = starlark.None
	if err := starlark.UnpackArgs("datetime", args, kw, "year", &y, "month", &mo, "day", &d,
		"hour?", &h, "minute?", &mi, "second?", &s, "microsecond?", &us, "tzinfo?", &tz); err != nil {
		return nil, err
	}
	if mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 59 {
		return nil, fmt.Errorf("datetime: value out of range")
	}
	return &datetimeValue{t: time.Date(y, time.Month(mo), d, h, mi, s, us*1000, time.UTC), aware: tz != starlark.None}, nil
}

func datetimeModule() starlark.Value {
	now := func(name string, forceAware bool) *starlark.Builtin {
		return starlark.NewBuiltin(name, func(_ *starlark.Thread, _ *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
			aware := forceAware || len(args) > 0 && args[0] != starlark.None
			for _, kv := range kw {
				if kv[0] == starlark.String("tz") && kv[1] != starlark.None {
					aware = true
				}
			}
			return newDatetime(time.Now().UTC(), aware), nil
		})
	}
	fromISO := starlark.NewBuiltin("fromisoformat", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		var s string
		if err := starlark.UnpackPositionalArgs(b.Name(), args, kw, 1, &s); err != nil {
			return nil, err
		}
		s = strings.Replace(strings.TrimSpace(s), "Z", "+00:00", 1)
		for _, layout := range []string{"2006-01-02T15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999-07:00"} {
			if t, err := time.Parse(layout, s); err == nil {
				return newDatetime(t, true), nil
			}
		}
		for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"} {
			if t, err := time.Parse(layout, s); err == nil {
				return newDatetime(t, false), nil
			}
		}
		return nil, fmt.Errorf("Invalid isoformat string: %s", pyQuote(s))
	})
	timedelta := starlark.NewBuiltin("timedelta", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
		var vals [7]starlark.Value
		if err := starlark.UnpackArgs(b.Name(), args, kw, "days?", &vals[0], "seconds?", &vals[1], "microseconds?", &vals[2],
			"milliseconds?", &vals[3], "minutes?", &vals[4], "hours?", &vals[5], "weeks?", &vals[6]); err != nil {
			return nil, err
		}
		var f [7]float64
		for i, v := range vals {
			if v == nil {
				continue
			}
			x, ok := starlark.AsFloat(v)
			if !ok {
				return nil, fmt.Errorf("timedelta: arguments must be numbers, not %s", v.Type())
			}
			f[i] = x
		}
		days, seconds, micro, milli, minutes, hours, weeks := f[0], f[1], f[2], f[3], f[4], f[5], f[6]
		total := ((weeks*7+days)*86400+hours*3600+minutes*60+seconds)*1e9 + milli*1e6 + micro*1e3
		if total > 1<<62 || total < -(1<<62) {
			return nil, fmt.Errorf("timedelta out of range")
		}
		return &timedeltaValue{time.Duration(total)}, nil
	})
	strptime := dtStrptime
	cls := &dtClass{members: starlark.StringDict{
		"now": now("now", false), "utcnow": now("utcnow", false), "today": now("today", false),
		"fromisoformat": fromISO, "strptime": strptime,
	}}
	// Julep nests these under datetime.datetime as well.
	cls.members["datetime"] = cls
	cls.members["timedelta"] = timedelta
	cls.members["date"] = dateClass
	return module("datetime", starlark.StringDict{
		"datetime":      cls,
		"date":          dateClass,
		"now":           cls.members["now"],
		"utcnow":        cls.members["utcnow"],
		"today":         cls.members["today"],
		"fromisoformat": fromISO,
		"strptime":      strptime,
		"timedelta":     timedelta,
		"timezone":      tzValue{},
	})
}

var dtStrptime = starlark.NewBuiltin("strptime", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (starlark.Value, error) {
	var s, f string
	if err := starlark.UnpackPositionalArgs(b.Name(), args, kw, 2, &s, &f); err != nil {
		return nil, err
	}
	layout := strings.NewReplacer("%Y", "2006", "%m", "01", "%d", "02", "%H", "15", "%M", "04", "%S", "05",
		"%y", "06", "%b", "Jan", "%B", "January", "%a", "Mon", "%A", "Monday", "%p", "PM", "%I", "03",
		"%f", "000000", "%z", "-0700", "%Z", "MST", "%%", "%").Replace(f)
	t, err := time.Parse(layout, s)
	if err != nil {
		return nil, fmt.Errorf("time data %s does not match format %s", pyQuote(s), pyQuote(f))
	}
	return newDatetime(t, strings.Contains(f, "%z")), nil
})
