package integrations

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// braveSearch is Julep's brave.search: LangChain's BraveSearch with
// count 3 over Brave's web search API; each result {title, link, snippet}.
// Setup: brave_api_key; arguments: query.
func braveSearch(ctx context.Context, c *client, setup, args map[string]any) (any, error) {
	key, err := need(setup, "setup", "brave_api_key")
	if err != nil {
		return nil, err
	}
	q, err := need(args, "arguments", "query")
	if err != nil {
		return nil, err
	}
	b, err := c.do(ctx, "GET", "/res/v1/web/search", url.Values{"q": {q}, "count": {"3"}},
		map[string]string{"X-Subscription-Token": key, "Accept": "application/json"}, nil)
	if err != nil {
		return nil, err
	}
	var r struct {
		Web struct {
			Results []struct {
				Title         string   `json:"title"`
				URL           string   `json:"url"`
				Description   string   `json:"description"`
				ExtraSnippets []string `json:"extra_snippets"`
			} `json:"results"`
		} `json:"web"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("Malformed JSON response from Brave Search")
	}
	out := []any{}
	for _, it := range r.Web.Results {
		snippet := strings.Join(append([]string{it.Description}, it.ExtraSnippets...), " ")
		out = append(out, map[string]any{"title": it.Title, "link": it.URL, "snippet": stripTags(snippet)})
	}
	return map[string]any{"result": out}, nil
}

var tagRE = regexp.MustCompile(`<[^>]*>`)

func stripTags(s string) string { return tagRE.ReplaceAllString(s, "") }

// weatherGet is Julep's weather.get: LangChain's OpenWeatherMapAPIWrapper
// (pyowm) over OpenWeatherMap's current weather API, formatted as that
// wrapper formats it. Setup: openweathermap_api_key; arguments: location.
func weatherGet(ctx context.Context, c *client, setup, args map[string]any) (any, error) {
	key, err := need(setup, "setup", "openweathermap_api_key")
	if err != nil {
		return nil, err
	}
	loc, err := need(args, "arguments", "location")
	if err != nil {
		return nil, err
	}
	b, err := c.do(ctx, "GET", "/data/2.5/weather", url.Values{"q": {loc}, "appid": {key}}, nil, nil)
	if err != nil {
		return nil, err
	}
	var r struct {
		Weather []struct {
			Description string `json:"description"`
		} `json:"weather"`
		Main struct {
			Temp      float64 `json:"temp"`
			FeelsLike float64 `json:"feels_like"`
			TempMin   float64 `json:"temp_min"`
			TempMax   float64 `json:"temp_max"`
			Humidity  int     `json:"humidity"`
		} `json:"main"`
		Wind struct {
			Speed float64 `json:"speed"`
			Deg   float64 `json:"deg"`
		} `json:"wind"`
		Clouds struct {
			All int `json:"all"`
		} `json:"clouds"`
		Rain map[string]float64 `json:"rain"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("malformed answer: %v", err)
	}
	status := ""
	if len(r.Weather) > 0 {
		status = r.Weather[0].Description
	}
	// pyowm converts kelvin to celsius rounded to 2 places.
	c2 := func(k float64) string { return pyFloat(math.Round((k-273.15)*100) / 100) }
	rain := "{}"
	if len(r.Rain) > 0 {
		parts := []string{}
		for _, k := range []string{"1h", "3h"} {
			if v, ok := r.Rain[k]; ok {
				parts = append(parts, fmt.Sprintf("'%s': %s", k, pyFloat(v)))
			}
		}
		rain = "{" + strings.Join(parts, ", ") + "}"
	}
	text := fmt.Sprintf("In %s, the current weather is as follows:\n"+
		"Detailed status: %s\nWind speed: %s m/s, direction: %s°\nHumidity: %d%%\nTemperature: \n"+
		"  - Current: %s°C\n  - High: %s°C\n  - Low: %s°C\n  - Feels like: %s°C\nRain: %s\nHeat index: None\nCloud cover: %d%%",
		loc, status, pyFloat(r.Wind.Speed), pyNum(r.Wind.Deg), r.Main.Humidity,
		c2(r.Main.Temp), c2(r.Main.TempMax), c2(r.Main.TempMin), c2(r.Main.FeelsLike), rain, r.Clouds.All)
	return map[string]any{"result": text}, nil
}

// pyFloat writes f as Python's repr of a float.
func pyFloat(f float64) string {
	s := fmt.Sprintf("%v", f)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

// pyNum writes a JSON number as Python would have decoded it: an int when
// whole.
func pyNum(f float64) string {
	if f == math.Trunc(f) {
		return fmt.Sprintf("%d", int64(f))
	}
	return pyFloat(f)
}

// wikipediaSearch is Julep's wikipedia.search: LangChain's WikipediaLoader
// (query, load_max_docs, default 2) over the MediaWiki API: the top
// results' pages as documents {page_content (at most 4,000 characters),
// metadata {title, summary, source}}.
func wikipediaSearch(ctx context.Context, c *client, _, args map[string]any) (any, error) {
	q, err := need(args, "arguments", "query")
	if err != nil {
		return nil, err
	}
	n := min(max(num(args, "load_max_docs", 2), 1), 10)
	b, err := c.do(ctx, "GET", "/w/api.php", url.Values{"action": {"query"}, "list": {"search"}, "srsearch": {q[:min(len(q), 300)]},
		"srlimit": {fmt.Sprint(n)}, "srprop": {""}, "format": {"json"}}, nil, nil)
	if err != nil {
		return nil, err
	}
	var sr struct {
		Query struct {
			Search []struct {
				Title string `json:"title"`
			} `json:"search"`
		} `json:"query"`
	}
	if err := json.Unmarshal(b, &sr); err != nil {
		return nil, fmt.Errorf("malformed answer: %v", err)
	}
	docs := []any{}
	for _, s := range sr.Query.Search {
		page := func(intro bool) (string, string, error) {
			v := url.Values{"action": {"query"}, "prop": {"extracts|info"}, "inprop": {"url"}, "explaintext": {"1"},
				"titles": {s.Title}, "format": {"json"}, "redirects": {"1"}}
			if intro {
				v.Set("exintro", "1")
			}
			pb, err := c.do(ctx, "GET", "/w/api.php", v, nil, nil)
			if err != nil {
				return "", "", err
			}
			var pr struct {
				Query struct {
					Pages map[string]struct {
						Extract string `json:"extract"`
						FullURL string `json:"fullurl"`
					} `json:"pages"`
				} `json:"query"`
			}
			if err := json.Unmarshal(pb, &pr); err != nil {
				return "", "", fmt.Errorf("malformed answer: %v", err)
			}
			for _, p := range pr.Query.Pages {
				return p.Extract, p.FullURL, nil
			}
			return "", "", nil
		}
		content, src, err := page(false)
		if err != nil {
			return nil, err
		}
		summary, _, err := page(true)
		if err != nil {
			return nil, err
		}
		if r := []rune(content); len(r) > 4000 {
			content = string(r[:4000])
		}
		docs = append(docs, map[string]any{"page_content": content, "type": "Document",
			"metadata": map[string]any{"title": s.Title, "summary": summary, "source": src}})
	}
	return map[string]any{"documents": docs}, nil
}

// arxivSearch is Julep's arxiv.search over arXiv's Atom query API.
// Arguments: query, max_results (5), sort_by (relevance, submittedDate,
// lastUpdatedDate), sort_order (descending). download_pdf is refused.
func arxivSearch(ctx context.Context, c *client, _, args map[string]any) (any, error) {
	q, err := need(args, "arguments", "query")
	if err != nil {
		return nil, err
	}
	if b, _ := args["download_pdf"].(bool); b {
		return nil, fmt.Errorf("download_pdf is not supported by the embedded engine")
	}
	sortBy := str(args, "sort_by", "relevance")
	if sortBy != "submittedDate" && sortBy != "lastUpdatedDate" {
		sortBy = "relevance"
	}
	order := "ascending"
	if str(args, "sort_order", "descending") == "descending" {
		order = "descending"
	}
	n := min(max(num(args, "max_results", 5), 1), 300)
	b, err := c.do(ctx, "GET", "/api/query", url.Values{"search_query": {q}, "start": {"0"}, "max_results": {fmt.Sprint(n)},
		"sortBy": {sortBy}, "sortOrder": {order}}, nil, nil)
	if err != nil {
		return nil, err
	}
	var feed struct {
		Entries []struct {
			ID        string `xml:"id"`
			Title     string `xml:"title"`
			Summary   string `xml:"summary"`
			Published string `xml:"published"`
			Updated   string `xml:"updated"`
			Authors   []struct {
				Name string `xml:"name"`
			} `xml:"author"`
			Comment    string `xml:"http://arxiv.org/schemas/atom comment"`
			JournalRef string `xml:"http://arxiv.org/schemas/atom journal_ref"`
			DOI        string `xml:"http://arxiv.org/schemas/atom doi"`
			Primary    struct {
				Term string `xml:"term,attr"`
			} `xml:"http://arxiv.org/schemas/atom primary_category"`
			Categories []struct {
				Term string `xml:"term,attr"`
			} `xml:"category"`
			Links []struct {
				Href  string `xml:"href,attr"`
				Title string `xml:"title,attr"`
			} `xml:"link"`
		} `xml:"entry"`
	}
	if err := xml.Unmarshal(b, &feed); err != nil {
		return nil, fmt.Errorf("malformed answer: %v", err)
	}
	ts := func(s string) string {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return s
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	}
	opt := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	out := []any{}
	for _, e := range feed.Entries {
		authors, cats, links := []any{}, []any{}, []any{}
		for _, a := range e.Authors {
			authors = append(authors, a.Name)
		}
		for _, ct := range e.Categories {
			cats = append(cats, ct.Term)
		}
		var pdf any
		for _, l := range e.Links {
			links = append(links, l.Href)
			if l.Title == "pdf" {
				pdf = l.Href
			}
		}
		out = append(out, map[string]any{
			"entry_id": e.ID, "title": strings.Join(strings.Fields(e.Title), " "), "authors": authors,
			"summary": strings.ReplaceAll(e.Summary, "\n", ""), "published": ts(e.Published), "updated": ts(e.Updated),
			"comment": opt(e.Comment), "journal_ref": opt(e.JournalRef), "doi": opt(e.DOI),
			"primary_category": e.Primary.Term, "categories": cats, "links": links, "pdf_url": pdf, "pdf_downloaded": nil,
		})
	}
	return map[string]any{"result": out}, nil
}

// spiderMethod is Julep's spider.<method> (crawl, links, screenshot,
// search) over Spider's API: POST /v1/<method> with the url and params;
// each page {url, content, error, status, costs}. Setup: spider_api_key;
// arguments: url, params, content_type.
func spiderMethod(name string) func(context.Context, *client, map[string]any, map[string]any) (any, error) {
	return func(ctx context.Context, c *client, setup, args map[string]any) (any, error) {
		key, err := need(setup, "setup", "spider_api_key")
		if err != nil {
			return nil, err
		}
		u, err := need(args, "arguments", "url")
		if err != nil {
			return nil, err
		}
		body := map[string]any{}
		if p, ok := args["params"].(map[string]any); ok {
			for k, v := range p {
				body[k] = v
			}
		}
		body["url"] = u
		hdr := map[string]string{"Authorization": "Bearer " + key}
		if ct := str(args, "content_type", ""); ct != "" {
			hdr["Accept"] = ct
		}
		b, err := c.do(ctx, "POST", "/v1/"+name, nil, hdr, body)
		if err != nil {
			return nil, err
		}
		var pages []map[string]any
		if err := json.Unmarshal(b, &pages); err != nil {
			var one map[string]any
			if json.Unmarshal(b, &one) != nil {
				return nil, fmt.Errorf("malformed answer: %v", err)
			}
			pages = []map[string]any{one}
		}
		out := []any{}
		for _, p := range pages {
			out = append(out, map[string]any{"url": p["url"], "content": p["content"], "error": p["error"], "status": p["status"], "costs": p["costs"]})
		}
		return map[string]any{"result": out}, nil
	}
}
