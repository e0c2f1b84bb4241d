package integrations

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Each provider runs against a local fake of its documented HTTP API; the
// expected shapes are Julep v1's integration outputs
// (integrations-service/integrations/models: BraveSearchOutput,
// WeatherGetOutput, WikipediaSearchOutput, ArxivSearchOutput, SpiderOutput).
func fake(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestBrave(t *testing.T) {
	t.Parallel()
	url := fake(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/res/v1/web/search" || r.Header.Get("X-Subscription-Token") != "k1" || r.URL.Query().Get("q") != "otters" || r.URL.Query().Get("count") != "3" {
			http.Error(w, "bad request "+r.URL.String(), 400)
			return
		}
		w.Write([]byte(`{"web":{"results":[{"title":"Otters","url":"https://o.example","description":"They <strong>hold</strong> hands","extra_snippets":["and sleep"]}]}}`))
	})
	out, err := Run(context.Background(), http.DefaultClient, map[string]string{"brave": url}, "brave", "", map[string]any{"brave_api_key": []any{"k1"}}, map[string]any{"query": "otters"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := asJSON(out), `{"result":[{"link":"https://o.example","snippet":"They hold hands and sleep","title":"Otters"}]}`; got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	if _, err := Run(context.Background(), http.DefaultClient, map[string]string{"brave": url}, "brave", "", map[string]any{}, map[string]any{"query": "x"}); err == nil || !strings.Contains(err.Error(), "setup.brave_api_key is required") {
		t.Fatalf("missing key: %v", err)
	}
}

func TestWeather(t *testing.T) {
	t.Parallel()
	url := fake(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/data/2.5/weather" || r.URL.Query().Get("appid") != "k2" || r.URL.Query().Get("q") != "Paris" {
			http.Error(w, "bad", 400)
			return
		}
		w.Write([]byte(`{"weather":[{"description":"light rain"}],"main":{"temp":290.15,"feels_like":289.65,"temp_min":288.15,"temp_max":291.15,"humidity":80},"wind":{"speed":3.6,"deg":220},"clouds":{"all":75},"rain":{"1h":0.5}}`))
	})
	out, err := Run(context.Background(), http.DefaultClient, map[string]string{"weather": url}, "weather", "get", map[string]any{"openweathermap_api_key": "k2"}, map[string]any{"location": "Paris"})
	if err != nil {
		t.Fatal(err)
	}
	// LangChain's OpenWeatherMapAPIWrapper._format_weather_info layout.
	want := "In Paris, the current weather is as follows:\nDetailed status: light rain\nWind speed: 3.6 m/s, direction: 220°\nHumidity: 80%\nTemperature: \n  - Current: 17.0°C\n  - High: 18.0°C\n  - Low: 15.0°C\n  - Feels like: 16.5°C\nRain: {'1h': 0.5}\nHeat index: None\nCloud cover: 75%"
	if got := out.(map[string]any)["result"]; got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestWikipedia(t *testing.T) {
	t.Parallel()
	url := fake(t, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case q.Get("list") == "search" && q.Get("srsearch") == "otter" && q.Get("srlimit") == "1":
			w.Write([]byte(`{"query":{"search":[{"title":"Otter"}]}}`))
		case q.Get("titles") == "Otter" && q.Get("exintro") == "1":
			w.Write([]byte(`{"query":{"pages":{"1":{"extract":"Otters are mammals.","fullurl":"https://en.wikipedia.org/wiki/Otter"}}}}`))
		case q.Get("titles") == "Otter":
			w.Write([]byte(`{"query":{"pages":{"1":{"extract":"Otters are mammals. They swim.","fullurl":"https://en.wikipedia.org/wiki/Otter"}}}}`))
		default:
			http.Error(w, "bad "+r.URL.RawQuery, 400)
		}
	})
	out, err := Run(context.Background(), http.DefaultClient, map[string]string{"wikipedia": url}, "wikipedia", "", nil, map[string]any{"query": "otter", "load_max_docs": float64(1)})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"documents":[{"metadata":{"source":"https://en.wikipedia.org/wiki/Otter","summary":"Otters are mammals.","title":"Otter"},"page_content":"Otters are mammals. They swim.","type":"Document"}]}`
	if got := asJSON(out); got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}

func TestArxiv(t *testing.T) {
	t.Parallel()
	url := fake(t, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/api/query" || q.Get("search_query") != "quantum" || q.Get("max_results") != "5" || q.Get("sortOrder") != "descending" {
			http.Error(w, "bad", 400)
			return
		}
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom">
  <entry>
    <id>http://arxiv.org/abs/2401.00001v1</id>
    <updated>2024-01-02T10:00:00Z</updated>
    <published>2024-01-01T09:30:00Z</published>
    <title>Quantum
  Otters</title>
    <summary>Line one
line two</summary>
    <author><name>Ada L</name></author>
    <author><name>Alan T</name></author>
    <arxiv:doi>10.1/x</arxiv:doi>
    <link href="http://arxiv.org/abs/2401.00001v1" rel="alternate" type="text/html"/>
    <link title="pdf" href="http://arxiv.org/pdf/2401.00001v1" rel="related" type="application/pdf"/>
    <arxiv:primary_category term="quant-ph" scheme="http://arxiv.org/schemas/atom"/>
    <category term="quant-ph" scheme="http://arxiv.org/schemas/atom"/>
  </entry>
</feed>`))
	})
	out, err := Run(context.Background(), http.DefaultClient, map[string]string{"arxiv": url}, "arxiv", "search", nil, map[string]any{"query": "quantum"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"result":[{"authors":["Ada L","Alan T"],"categories":["quant-ph"],"comment":null,"doi":"10.1/x","entry_id":"http://arxiv.org/abs/2401.00001v1",` +
		`"journal_ref":null,"links":["http://arxiv.org/abs/2401.00001v1","http://arxiv.org/pdf/2401.00001v1"],"pdf_downloaded":null,"pdf_url":"http://arxiv.org/pdf/2401.00001v1",` +
		`"primary_category":"quant-ph","published":"2024-01-01 09:30:00","summary":"Line oneline two","title":"Quantum Otters","updated":"2024-01-02 10:00:00"}]}`
	if got := asJSON(out); got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}

func TestSpider(t *testing.T) {
	t.Parallel()
	url := fake(t, func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		if r.Method != "POST" || r.URL.Path != "/v1/crawl" || r.Header.Get("Authorization") != "Bearer k3" || body["url"] != "https://x.example" || body["limit"] != float64(1) {
			http.Error(w, "bad", 400)
			return
		}
		w.Write([]byte(`[{"url":"https://x.example","content":"# X","status":200,"costs":{"total_cost":0.0001},"error":null}]`))
	})
	out, err := Run(context.Background(), http.DefaultClient, map[string]string{"spider": url}, "spider", "crawl",
		map[string]any{"spider_api_key": "k3"}, map[string]any{"url": "https://x.example", "params": map[string]any{"limit": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := asJSON(out), `{"result":[{"content":"# X","costs":{"total_cost":0.0001},"error":null,"status":200,"url":"https://x.example"}]}`; got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}

func TestUnknownProviderAndMethod(t *testing.T) {
	t.Parallel()
	if err := Check("telegraph", ""); err == nil || !strings.Contains(err.Error(), `"telegraph"`) {
		t.Fatalf("telegraph: %v", err)
	}
	if err := Check("brave", "fetch"); err == nil || !strings.Contains(err.Error(), `no method "fetch"`) {
		t.Fatalf("brave.fetch: %v", err)
	}
	if out, err := Run(context.Background(), http.DefaultClient, nil, "dummy", "", nil, map[string]any{"a": 1}); err != nil || asJSON(out) != `{"a":1}` {
		t.Fatalf("dummy: %v %v", out, err)
	}
	if EnvVar("brave") != "ASTRA_INTEGRATION_BRAVE_URL" {
		t.Fatal(EnvVar("brave"))
	}
}

func TestProviderErrorsAreOneLine(t *testing.T) {
	t.Parallel()
	url := fake(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "quota exceeded", 429) })
	_, err := Run(context.Background(), http.DefaultClient, map[string]string{"brave": url}, "brave", "", map[string]any{"brave_api_key": "k"}, map[string]any{"query": "x"})
	if err == nil || err.Error() != "brave.search: brave answered 429: quota exceeded" {
		t.Fatalf("err %v", err)
	}
}

func TestCloudinaryUpload(t *testing.T) {
	t.Parallel()
	url := fake(t, func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		f := r.PostForm
		params := map[string]string{"public_id": f.Get("public_id"), "timestamp": f.Get("timestamp"), "folder": f.Get("folder")}
		if r.URL.Path != "/v1_1/demo/image/upload" || f.Get("api_key") != "k4" || f.Get("file") != "https://img.example/a.png" ||
			f.Get("public_id") != "pic" || f.Get("signature") != cloudinarySignature(params, "s4") {
			http.Error(w, "bad "+r.URL.Path+" "+f.Encode(), 401)
			return
		}
		w.Write([]byte(`{"public_id":"pic","secure_url":"https://res.example/demo/pic.png","width":10,"format":"png"}`))
	})
	out, err := Run(context.Background(), http.DefaultClient, map[string]string{"cloudinary": url}, "cloudinary", "media_upload",
		map[string]any{"cloudinary_api_key": "k4", "cloudinary_api_secret": "s4", "cloudinary_cloud_name": "demo"},
		map[string]any{"file": "https://img.example/a.png", "public_id": "pic", "upload_params": map[string]any{"folder": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := asJSON(out), `{"base64":null,"meta_data":{"format":"png","width":10},"public_id":"pic","url":"https://res.example/demo/pic.png"}`; got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	// Cloudinary's documented example: SHA-1 of "eager=w_400,h_300,c_pad|w_260,h_200,c_crop&public_id=sample_image&timestamp=1315060510" + secret.
	if got := cloudinarySignature(map[string]string{"eager": "w_400,h_300,c_pad|w_260,h_200,c_crop", "public_id": "sample_image", "timestamp": "1315060510"}, "abcd"); got != "bfd09f95f331f558cbd1320e67aa8d488770583e" {
		t.Fatalf("signature %s", got)
	}
}

// fakeSMTP is a minimal SMTP server on loopback (no STARTTLS, which the
// client allows only for loopback) that records one message.
func fakeSMTP(t *testing.T) (host string, port int, got chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got = make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		say := func(s string) { conn.Write([]byte(s + "\r\n")) }
		say("220 fake ESMTP")
		var log strings.Builder
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			cmd := strings.ToUpper(strings.TrimSpace(line))
			log.WriteString(strings.TrimSpace(line) + "\n")
			switch {
			case strings.HasPrefix(cmd, "EHLO"):
				say("250-fake")
				say("250 AUTH PLAIN")
			case strings.HasPrefix(cmd, "AUTH"):
				say("235 ok")
			case strings.HasPrefix(cmd, "MAIL"), strings.HasPrefix(cmd, "RCPT"):
				say("250 ok")
			case cmd == "DATA":
				say("354 go")
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if l == ".\r\n" {
						break
					}
					log.WriteString(l)
				}
				say("250 queued")
			case cmd == "QUIT":
				say("221 bye")
				got <- log.String()
				return
			default:
				say("250 ok")
			}
		}
	}()
	a := ln.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port, got
}

func TestEmailSend(t *testing.T) {
	t.Parallel()
	host, port, got := fakeSMTP(t)
	out, err := Run(context.Background(), http.DefaultClient, nil, "email", "send",
		map[string]any{"host": host, "port": float64(port), "user": "u", "password": "p"},
		map[string]any{"to": "ada@example.com", "from": "bot@example.com", "subject": "Hi", "body": "<p>Hello</p>"})
	if err != nil {
		t.Fatal(err)
	}
	if asJSON(out) != `{"success":true}` {
		t.Fatalf("out %s", asJSON(out))
	}
	log := <-got
	for _, want := range []string{"MAIL FROM:<bot@example.com>", "RCPT TO:<ada@example.com>", "Subject: Hi", `Content-Type: text/html; charset="utf-8"`, "<p>Hello</p>", "AUTH PLAIN"} {
		if !strings.Contains(log, want) {
			t.Errorf("the server did not see %q:\n%s", want, log)
		}
	}
}
