package expr

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

// decodeVars decodes vars the way the engine gets them: from JSON, so every
// number is a float64.
func decodeVars(t *testing.T, s string) map[string]any {
	t.Helper()
	if s == "" {
		return nil
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad vars %s: %v", s, err)
	}
	return v
}

// canon renders a value as compact JSON for comparison.
func canon(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %#v: %v", v, err)
	}
	return string(b)
}

func canonJSON(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := decodeJSON([]byte(s), &v); err != nil {
		t.Fatalf("bad want %s: %v", s, err)
	}
	return canon(t, v)
}

type vector struct {
	name string
	src  string
	vars string // JSON object
	want string // JSON value
}

// Expressions from /work/shared/reference/julep/sample_tasks (each one, in
// the form it appears there, plus the `$ ` form of the plain strings whose
// intent was an expression).
var sampleVectors = []vector{
	// find_selector.yaml
	{"find_selector/over", `_["parameters"]`, `{"_": {"parameters": ["login", "password"]}}`, `["login", "password"]`},
	{"find_selector/system prompt", "From the screenshot below, can you identify if the page has {{_}} for the user?\nWrite your answer in the following yaml format:\n\nfound: true|false\nvalue: <value>|null", `{"_": "a login button"}`,
		`"From the screenshot below, can you identify if the page has a login button for the user?\nWrite your answer in the following yaml format:\n\nfound: true|false\nvalue: <value>|null"`},
	{"find_selector/image url", "data:image/png;base64,{{inputs[0].screenshot_base64}}", `{"inputs": [{"screenshot_base64": "iVBOR"}]}`, `"data:image/png;base64,iVBOR"`},
	{"find_selector/reduce as written", `results + [ load_yaml(_["choices"][0]["message"].content.strip()) ]`, `{}`, `"results + [ load_yaml(_[\"choices\"][0][\"message\"].content.strip()) ]"`},
	{"find_selector/reduce", `$ results + [ load_yaml(_["choices"][0]["message"].content.strip()) ]`,
		`{"results": [{"found": false, "value": null}], "_": {"choices": [{"message": {"content": "\nfound: true\nvalue: user-42\n"}}]}}`,
		`[{"found": false, "value": null}, {"found": true, "value": "user-42"}]`},
	{"find_selector/evaluate", `[ {"value": result["value"], "network_request": request} for request in inputs[0]["network_requests"] for result in _ if result["found"] and result["value"] in request["response"]["body"] ]`,
		`{"inputs": [{"network_requests": [{"response": {"body": "id=user-42"}}, {"response": {"body": "nothing"}}]}], "_": [{"found": true, "value": "user-42"}, {"found": false, "value": null}]}`,
		`[{"value": "user-42", "network_request": {"response": {"body": "id=user-42"}}}]`},
	{"find_selector/if as written", `len(_["result"]) > 0`, `{}`, `"len(_[\"result\"]) > 0"`},
	{"find_selector/if", `$ len(_["result"]) > 0`, `{"_": {"result": [1]}}`, `true`},
	{"find_selector/log", `list(zip(_, inputs[0]["network_requests"]))`, `{"_": [1, 2], "inputs": [{"network_requests": ["a", "b", "c"]}]}`, `[[1, "a"], [2, "b"]]`},
	{"find_selector/error", "Could not find the selector in any of the network requests", `{}`, `"Could not find the selector in any of the network requests"`},
	// integration_example.yaml and simple_multi_step.yaml
	{"multi_step/foreach in", `_["topics"]`, `{"_": {"topics": ["ai", "go"]}}`, `["ai", "go"]`},
	{"multi_step/prompt", "Generate a list of 10 questions for the topic {{_}} as valid yaml.", `{"_": "ai"}`, `"Generate a list of 10 questions for the topic ai as valid yaml."`},
	{"integration/query as written", "'\n'.join(_)", `{"_": ["a", "b"]}`, `"'\n'.join(_)"`},
	{"integration/query", "$ '\\n'.join(_)", `{"_": ["a", "b"]}`, `"a\nb"`},
	{"multi_step/log", `_`, `{"_": {"x": 1}}`, `{"x": 1}`},
	{"multi_step/evaluate", `[item["choices"][0]["message"].content.strip() for item in _]`,
		`{"_": [{"choices": [{"message": {"content": " q1 "}}]}, {"choices": [{"message": {"content": "q2\n"}}]}]}`, `["q1", "q2"]`},
	// reclaim-example.yaml
	{"reclaim/over", `_.parameter_names`, `{"_": {"parameter_names": ["username", "rating"]}}`, `["username", "rating"]`},
	{"reclaim/user text", "In the screenshot attached, find the parameter `{{_}}` and extract it according to the instructions.", `{"_": "rating"}`,
		"\"In the screenshot attached, find the parameter `rating` and extract it according to the instructions.\""},
	{"reclaim/image url", `data:image/png;base64,{{inputs[0].screenshot_base64}}`, `{"inputs": [{"screenshot_base64": "QUJD"}]}`, `"data:image/png;base64,QUJD"`},
	{"reclaim/results", `[result.choices[0].message.content for result in _]`, `{"_": [{"choices": [{"message": {"content": "A"}}]}, {"choices": [{"message": {"content": "B"}}]}]}`, `["A", "B"]`},
	{"reclaim/foreach in", `_.results`, `{"_": {"results": ["x"]}}`, `["x"]`},
	{"reclaim/parsed_result", "$ load_json(_.split('```json')[1].split('```')[0])", "{\"_\": \"Here:\\n```json\\n{\\\"rating\\\": 1500}\\n```\\nbye\"}", `{"rating": 1500}`},
	// simple_parameter_extractor.yaml and simple_prompt.yaml
	{"extractor/image url", `{{_.screenshot_url}}`, `{"_": {"screenshot_url": "https://i.example/x.png"}}`, `"https://i.example/x.png"`},
	{"extractor/result", `_["choices"][0]["message"].content.strip()`, `{"_": {"choices": [{"message": {"content": "  {\"rating\": 1}  "}}]}}`, `"{\"rating\": 1}"`},
	{"simple_prompt/user", "You are a brilliant poet with a whimsical style reminiscent of Edgar Alan Poe. Write a short poem about {{_.topic}}.", `{"_": {"topic": "ravens"}}`,
		`"You are a brilliant poet with a whimsical style reminiscent of Edgar Alan Poe. Write a short poem about ravens."`},
}

// A spread of expressions from the julep-ai/library task templates.
var libraryVectors = []vector{
	{"analyst/query", `$ steps[0].input.topic + " latest developments"`, `{"steps": [{"input": {"topic": "fusion"}}]}`, `"fusion latest developments"`},
	{"analyst/secret set", `$ {secrets.BRAVE_API_KEY}`, `{"secrets": {"BRAVE_API_KEY": "k-1"}}`, `["k-1"]`},
	{"browser/agent", `$ str(agent.id)`, `{"agent": {"id": "a1b2"}}`, `"a1b2"`},
	{"browser/recall", `$ False`, `{}`, `false`},
	{"browser/action", `$ _.action if not (str(_.get('text', '')).startswith('http') and _.action == 'type') else 'navigate'`, `{"_": {"action": "type", "text": "https://x"}}`, `"navigate"`},
	{"browser/action keep", `$ _.action if not (str(_.get('text', '')).startswith('http') and _.action == 'type') else 'navigate'`, `{"_": {"action": "click"}}`, `"click"`},
	{"browser/messages", `$ [{'content': [_.contents[i]], 'role': 'tool', 'name': 'computer', 'tool_call_id': steps[1].output.tool_calls[i].tool_call_id} for i in range(len(_.contents))]`,
		`{"_": {"contents": ["c0"]}, "steps": [{}, {"output": {"tool_calls": [{"tool_call_id": "t0"}]}}]}`,
		`[{"content": ["c0"], "role": "tool", "name": "computer", "tool_call_id": "t0"}]`},
	{"browser/if", `$ len(_.messages) > 0`, `{"_": {"messages": []}}`, `false`},
	{"docs/chunks", "$ [\" \".join(_.content.strip().split()[i:i + 2]) \n  for i in range(0, len(_.content.strip().split()), 2)]\n", `{"_": {"content": " a b c d e "}}`, `["a b", "c d", "e"]`},
	{"docs/title", `$ f'Julep Documentation - {steps[0].input.page_url}'`, `{"steps": [{"input": {"page_url": "https://docs/x"}}]}`, `"Julep Documentation - https://docs/x"`},
	{"docs/pages", `$ [page for page in _.result if page.status == 200 and page.content]`, `{"_": {"result": [{"status": 200, "content": "x"}, {"status": 404, "content": "y"}, {"status": 200, "content": ""}]}}`, `[{"status": 200, "content": "x"}]`},
	{"docs/concepts", "$ f\"\"\"\nConcepts: {', '.join(steps[2].output.doc_analysis.get('primary_concepts', []))}\nType: {steps[2].output.doc_analysis.get('content_type', 'documentation')}\n\"\"\"",
		`{"steps": [{}, {}, {"output": {"doc_analysis": {"primary_concepts": ["agents", "tasks"]}}}]}`, `"\nConcepts: agents, tasks\nType: documentation\n"`},
	{"docs/timestamp prefix", `$ datetime.datetime.now().isoformat()[:2]`, `{}`, `"20"`},
	{"docs/system prompt braces", "Return ONLY raw JSON:\n{{{\n  \"code_examples\": [ {{{\"language\": \"python\"}}} ]\n}}}", `{}`, `"Return ONLY raw JSON:\n{\n  \"code_examples\": [ {\"language\": \"python\"} ]\n}"`},
	{"email/snippets", "$ f'''Docs:\n{'\\n'.join([snippet.content for doc in _.docs for snippet in doc.snippets])}'''", `{"_": {"docs": [{"snippets": [{"content": "s1"}, {"content": "s2"}]}]}}`, `"Docs:\ns1\ns2"`},
	{"email/subject", "$ extract_json(_)['subject']", "{\"_\": \"```json\\n{\\\"subject\\\": \\\"Hi\\\", \\\"body\\\": \\\"B\\\"}\\n```\"}", `"Hi"`},
	{"email/to", `$ steps[0].input['from']`, `{"steps": [{"input": {"from": "a@b.c"}}]}`, `"a@b.c"`},
	{"hn/message", `$ f"Fetched {len(steps['fetch_story_ids'].output.json)} stories, processing top 50"`, `{"steps": [{"label": "fetch_story_ids", "output": {"json": [1, 2, 3]}}]}`, `"Fetched 3 stories, processing top 50"`},
	{"hn/story ids", `$ steps["fetch_story_ids"].output.json[:2]`, `{"steps": [{"label": "fetch_story_ids", "output": {"json": [1, 2, 3]}}]}`, `[1, 2]`},
	{"hn/filtered", `$ [s for s in steps["extract_stories"]["output"]["stories"] if "score" in s and s["score"] >= inputs.get("min_score", 50)]`,
		`{"steps": [{"label": "extract_stories", "output": {"stories": [{"score": 10}, {"score": 70}, {"id": 1}]}}], "inputs": {}}`, `[{"score": 70}]`},
	{"hn/stories_with_comments", `$ [dict(story, content=steps["sc"]["output"]["c"][i], top_comments=[item[1] for item in steps["cg"]["output"]["g"] if item[0] == i]) for i, story in enumerate(steps["ss"]["output"]["s"])]`,
		`{"steps": [{"label": "sc", "output": {"c": ["c0", "c1"]}}, {"label": "cg", "output": {"g": [[0, "x"], [1, "y"], [0, "z"]]}}, {"label": "ss", "output": {"s": [{"id": 7}, {"id": 8}]}}]}`,
		`[{"id": 7, "content": "c0", "top_comments": ["x", "z"]}, {"id": 8, "content": "c1", "top_comments": ["y"]}]`},
	{"hn/template", `Top comment: ${{ _["top_comments"][0]["text"] if _["top_comments"] else "No comments" }}`, `{"_": {"top_comments": []}}`, `"Top comment: $No comments"`},
	{"hn/scores", `$ [{"story": i, "relevance_score": json.loads(steps["score_stories"]["output"][i])["relevance_score"]} for i in range(len(steps["score_stories"]["output"]))]`,
		`{"steps": [{"label": "score_stories", "output": ["{\"relevance_score\": 80}"]}]}`, `[{"story": 0, "relevance_score": 80}]`},
	{"hook/summary", "$ list({\n 'caption': ((response.get('caption') or {}).get('text') or 'No Caption Available'),\n 'video_duration': (response.get('video_duration') or 0),\n 'virality_score': (((response.get('reshare_count') or 0) / (response.get('play_count') or 1)) if (response.get('play_count') or 0) > 0 else 0),\n 'video_duration': (response.get('video_duration') or 0)\n } for response in _['json']['data']['items'])",
		`{"_": {"json": {"data": {"items": [{"caption": {"text": "hi"}, "reshare_count": 5, "play_count": 10}, {"caption": null}]}}}}`,
		`[{"caption": "hi", "video_duration": 0, "virality_score": 0.5}, {"caption": "No Caption Available", "video_duration": 0, "virality_score": 0}]`},
	{"hook/description", "$ list(load_json(res.replace(\"```json\", \"\").replace(\"```\", \"\")) for res in _)", "{\"_\": [\"```json{\\\"a\\\": 1}```\"]}", `[{"a": 1}]`},
	{"multi_step/split", `$ _.split('\\n')`, `{"_": "a\\nb"}`, `["a", "b"]`},
	{"multi_step/if", `$ len(_.relevant_info) >= 3`, `{"_": {"relevant_info": [1, 2, 3]}}`, `true`},
	{"researcher/query", `$ 'the latest news about ' + _`, `{"_": "go"}`, `"the latest news about go"`},
	{"research/keywords", `$ str(_).split(',')[:2]`, `{"_": "a,b,c"}`, `["a", "b"]`},
	{"research/nested fstring", `$ f'''{ '\n'.join([f"- (Title: {doc['title']}, URL: {doc['pdf_url']})" for result in _ for doc in result['result']]) }'''`,
		`{"_": [{"result": [{"title": "T1", "pdf_url": "u1"}, {"title": "T2", "pdf_url": "u2"}]}]}`, `"- (Title: T1, URL: u1)\n- (Title: T2, URL: u2)"`},
	{"research/zip", "$ list(\n  zip(\n    [pair.split(',')[0] for pair in str(_).split(',,')],\n    [pair.split(',')[1].replace(\"http://\", \"https://\") for pair in str(_).split(',,')]\n  )\n)",
		`{"_": "T1,http://a,,T2,http://b"}`, `[["T1", "https://a"], ["T2", "https://b"]]`},
	{"profiling/doc", `$ _[0] if len(_) > 0 else {}`, `{"_": []}`, `{}`},
	{"profiling/persona", `$ _.doc.get('content', "No persona found. The user does not have a persona yet.")`, `{"_": {"doc": {}}}`, `"No persona found. The user does not have a persona yet."`},
	{"profiling/titles", "$ load_yaml(_[_.find(\"```yaml\")+7:_.rfind(\"```\")].strip())['articles']", "{\"_\": \"x```yaml\\narticles:\\n  - A\\n  - B\\n```\"}", `["A", "B"]`},
	{"reel/url", `$ _.json.urls['get']`, `{"_": {"json": {"urls": {"get": "https://r/1"}}}}`, `"https://r/1"`},
	{"reel/effects", `$ ["zoomIn", "slideUp"]`, `{}`, `["zoomIn", "slideUp"]`},
	{"trip/zipped", "$ list(\n  zip(\n    steps[0].input.locations,\n    [output['result'] for output in steps[0].output],\n    steps[1].output\n  )\n)",
		`{"steps": [{"input": {"locations": ["Paris"]}, "output": [{"result": "sunny"}]}, {"output": ["louvre"]}]}`, `[["Paris", "sunny", "louvre"]]`},
	{"join/string chars", `$ '-'.join('abc') + ''.join('héllo') + ','.join('')`, `{}`, `"a-b-chéllo"`},
	{"trip/join", `$ '\\n---\\n'.join(activity for activity in _)`, `{"_": ["a", "b"]}`, `"a\\n---\\nb"`},
	{"trip/location", "$ f'''Location: \"{_[0]}\"\nWeather: \"{_[1]}\"'''", `{"_": ["Paris", "sunny"]}`, `"Location: \"Paris\"\nWeather: \"sunny\""`},
	{"website/join", "$ \" \".join(\nlist(\n  page['content'] for page in _['result']\n  )\n)\n", `{"_": {"result": [{"content": "a"}, {"content": "b"}]}}`, `"a b"`},
	{"video/transformation", "$ load_json(\n  _[_.find(\"```json\")+7:][:_[_.find(\"```json\")+7:].find(\"```\")])", "{\"_\": \"x```json[1, 2]```y\"}", `[1, 2]`},
}

// Python features beyond the task corpus.
var languageVectors = []vector{
	{"strip", `$ _.topic.strip()`, `{"_": {"topic": "  cats  "}}`, `"cats"`},
	{"range of JSON int", `$ list(range(_.n))`, `{"_": {"n": 3}}`, `[0, 1, 2]`},
	{"int stays int", `$ _.n // 2`, `{"_": {"n": 7}}`, `3`},
	{"true division", `$ 7 / 2`, ``, `3.5`},
	{"power", `$ 2 ** 10`, ``, `1024`},
	{"power right assoc", `$ 2 ** 3 ** 2`, ``, `512`},
	{"power unary", `$ -2 ** 2`, ``, `-4`},
	{"power float", `$ 4 ** 0.5`, ``, `2.0`},
	{"power of attr", `$ _.x.y ** 2 + 1`, `{"_": {"x": {"y": 3}}}`, `10`},
	{"chained comparison", `$ 1 < _.n <= 3`, `{"_": {"n": 3}}`, `true`},
	{"chained false", `$ 3 < 2 < 1`, ``, `false`},
	{"not in", `$ 'x' not in ['a', 'b']`, ``, `true`},
	{"is None", `$ _.v is None`, `{"_": {"v": null}}`, `true`},
	{"is not None", `$ _.v is not None`, `{"_": {"v": 1}}`, `true`},
	{"string repeat", `$ '-' * 5`, ``, `"-----"`},
	{"slicing", `$ 'abcdef'[1:5:2]`, ``, `"bd"`},
	{"negative slice", `$ [1, 2, 3, 4][-2:]`, ``, `[3, 4]`},
	{"reverse slice", `$ [1, 2, 3][::-1]`, ``, `[3, 2, 1]`},
	{"empty slice past the end", `$ '0000'[7:0]`, ``, `""`},
	{"empty slice backwards range", `$ [1, 2, 3][2:1]`, ``, `[]`},
	{"empty slice negative step", `$ [1, 2, 3][0:2:-1]`, ``, `[]`},
	{"negative step within range", `$ 'abcdef'[4:1:-2]`, ``, `"ec"`},
	{"dict comprehension", `$ {k: v * 2 for k, v in _.items()}`, `{"_": {"a": 1, "b": 2}}`, `{"a": 2, "b": 4}`},
	{"set comprehension", `$ sorted({x % 3 for x in range(10)})`, ``, `[0, 1, 2]`},
	{"conditional", `$ 'big' if _ > 10 else 'small'`, `{"_": 11}`, `"big"`},
	{"lambda sort", `$ sorted(_, key=lambda d: d['n'], reverse=True)`, `{"_": [{"n": 1}, {"n": 3}, {"n": 2}]}`, `[{"n": 3}, {"n": 2}, {"n": 1}]`},
	{"percent format", `$ '%s has %d items (%.1f%%)' % ('cart', 3, 42.25)`, ``, `"cart has 3 items (42.2%)"`},
	{"percent dict", `$ '%(a)s-%(b)03d' % {'a': 'x', 'b': 7}`, ``, `"x-007"`},
	{"str methods", `$ [s.removeprefix('pre').removesuffix('.txt').upper() for s in ['prefoo.txt', 'bar']]`, ``, `["FOO", "BAR"]`},
	{"more str methods", `$ ['a,b,c'.rsplit(',', 1), '  x '.lstrip(), 'x  '.rstrip(), 'hello world'.title(), 'hELLO'.capitalize(), 'aXa'.replace('a', 'b'), 'abc'.find('c'), 'aaa'.count('a'), '7'.zfill(3), '42'.isdigit(), 'a\nb'.splitlines()]`, ``,
		`[["a,b", "c"], "x ", "x", "Hello World", "Hello", "bXb", 2, 3, "007", true, ["a", "b"]]`},
	{"startswith tuple", `$ 'https://x'.startswith(('http://', 'https://')) and 'a.txt'.endswith('.txt')`, ``, `true`},
	{"str.format", `$ '{} + {name} = {0:>4}'.format(3, name='four')`, ``, `"3 + four =    3"`},
	{"list methods", `$ [x for x in [[3, 1, 2]] if x.sort() == None][0] + [[1, 2, 2].count(2), [1, 2].index(2)]`, ``, `[1, 2, 3, 2, 1]`},
	{"dict methods", `$ [sorted(_.keys()), sorted(_.values()), _.get('zz', 'dflt'), len(_.items())]`, `{"_": {"a": 1, "b": 2}}`, `[["a", "b"], [1, 2], "dflt", 2]`},
	{"builtins", `$ [len('abc'), str(1.5), int('42'), float('2.5'), bool(''), list('ab'), tuple([1]), abs(-3), round(2.675, 2), round(2.5), min(3, 1, 2), max([4, 9]), sum([1, 2, 3]), any([0, 1]), all([1, 0])]`, ``,
		`[3, "1.5", 42, 2.5, false, ["a", "b"], [1], 3, 2.67, 2, 1, 9, 6, true, false]`},
	{"builtins2", `$ [list(reversed([1, 2])), list(enumerate('ab', 1)), list(zip([1, 2], 'ab')), isinstance(1, int), isinstance(True, int), isinstance('s', (list, str)), type([]) == list, divmod(7, 2), pow(2, 5)]`, ``,
		`[[2, 1], [[1, "a"], [2, "b"]], [[1, "a"], [2, "b"]], true, true, true, true, [3, 1], 32]`},
	{"map filter reduce", `$ [list(map(lambda x: x * 2, [1, 2])), list(filter(None, [0, 1, 2])), reduce(lambda a, b: a + b, [1, 2, 3], 10)]`, ``, `[[2, 4], [1, 2], 16]`},
	{"str of containers", `$ str({'a': None, 'b': [True, 1.0, 'x']})`, ``, `"{'a': None, 'b': [True, 1.0, 'x']}"`},
	{"repr quotes", `$ repr("it's")`, ``, `"\"it's\""`},
	{"json dumps", `$ json.dumps({'a': [1, 2.5, None, True], 'é': 'ü'})`, ``, `"{\"a\": [1, 2.5, null, true], \"\\u00e9\": \"\\u00fc\"}"`},
	{"json dumps indent sort", `$ json.dumps({'b': 1, 'a': []}, indent=2, sort_keys=True)`, ``, `"{\n  \"a\": [],\n  \"b\": 1\n}"`},
	{"json loads", `$ json.loads('{"a": [1, 2.0, "x"]}')['a']`, ``, `[1, 2.0, "x"]`},
	{"dump_json", `$ dump_json([1, 'a'])`, ``, `"[1, \"a\"]"`},
	{"extract_json plain", `$ extract_json('{"k": "v"}').k`, ``, `"v"`},
	{"re", `$ [re.match(r'(\d+)-(\d+)', '12-34').group(2), re.search(r'b+', 'abbbc').group(), re.findall(r'\d', 'a1b2'), re.findall(r'(\w)=(\d)', 'a=1 b=2'), re.sub(r'(\w+)@', r'\1 at ', 'me@x'), re.split(r'\s*,\s*', 'a , b,c'), re.fullmatch(r'\d+', '12a') == None, re.match('b', 'ab') == None]`, ``,
		`["34", "bbb", ["1", "2"], [["a", "1"], ["b", "2"]], "me at x", ["a", "b", "c"], true, true]`},
	{"re named groups", `$ re.search(r'(?P<year>\d{4})', 'in 2024').groupdict()`, ``, `{"year": "2024"}`},
	{"re flags", `$ re.findall('a', 'AaA', re.I)`, ``, `["A", "a", "A"]`},
	{"math", `$ [math.sqrt(16), math.floor(2.7), math.ceil(2.1), round(math.pi, 2)]`, ``, `[4.0, 2, 3, 3.14]`},
	{"statistics", `$ [statistics.mean([1, 2, 3]), statistics.median([1, 3, 2, 4]), statistics.mean([1, 2])]`, ``, `[2, 2.5, 1.5]`},
	{"base64", `$ [base64.b64encode('hello'), base64.b64decode('aGVsbG8=')]`, ``, `["aGVsbG8=", "hello"]`},
	{"random", `$ [random.randint(1, 1), random.choice(['only']), 0 <= random.random() < 1]`, ``, `[1, "only", true]`},
	{"string constants", `$ string.digits + string.ascii_uppercase[:3]`, ``, `"0123456789ABC"`},
	{"yaml", `$ [yaml.safe_load('a: [1, 2]'), load_yaml('x: y')['x'], yaml.dump({'k': 'v'})]`, ``, `[{"a": [1, 2]}, "y", "k: v\n"]`},
	{"datetime", `$ [len(datetime.now().isoformat()) >= 19, datetime.utcnow().year >= 2024, datetime.datetime(2024, 1, 2, 3, 4, 5).strftime('%Y/%m/%d %H:%M'), (datetime.datetime(2024, 1, 2) + datetime.timedelta(days=1)).isoformat(), str(datetime.fromisoformat('2024-05-06T07:08:09'))]`, ``,
		`[true, true, "2024/01/02 03:04", "2024-01-03T00:00:00", "2024-05-06 07:08:09"]`},
	{"time", `$ time.time() > 1.7e9`, ``, `true`},
	{"constants", `$ [NEWLINE, true, false, null, True, None]`, ``, `["\n", true, false, null, true, null]`},
	{"chunk_doc", `$ chunk_doc('One. Two! Three?')`, ``, `["One. Two! Three?"]`},
	{"steps by label", `$ steps['first'].output`, `{"steps": [{"label": "first", "output": "o0"}]}`, `"o0"`},
	{"secrets", `$ 'Bearer ' + secrets.TOKEN`, `{"secrets": {"TOKEN": "abc"}}`, `"Bearer abc"`},
	{"nested attr", `$ steps[0].output.a.b[1].c`, `{"steps": [{"output": {"a": {"b": [{}, {"c": "deep"}]}}}]}`, `"deep"`},
	{"duplicate keys", `$ {'a': 1, 'a': 2}`, ``, `{"a": 2}`},
	{"genexp sum", `$ sum(x * x for x in range(4))`, ``, `14`},
	{"backslash continuation", "$ 1 + \\\n  2", ``, `3`},
	{"comment in expr", "$ [1, # one\n 2]", ``, `[1, 2]`},
	{"tuple result", `$ (1, 'a')`, ``, `[1, "a"]`},
	{"legacy bracket", `[1, 2]`, ``, `[1, 2]`},
	{"legacy outputs", `outputs[0].x`, `{"outputs": [{"x": 5}]}`, `5`},
	// f-strings and format specs
	{"fstring specs", `$ f'{3.14159:.2f}|{42:>5}|{"s"!r}|{7:03d}|{0.256:.1%}|{1234567:,}|{255:x}|{255:#X}|{"ab":*^6}|{-3:+d}|{1e-7}|{2.0}'`, ``,
		`"3.14|   42|'s'|007|25.6%|1,234,567|ff|0XFF|**ab**|-3|1e-07|2.0"`},
	{"fstring nested spec", `$ f'{_:>{n}}|{_=}'`, `{"_": "x", "n": 3}`, `"  x|_='x'"`},
	{"fstring escapes", `$ f'{{literal}} {1 + 1}'`, ``, `"{literal} 2"`},
	{"template spec", `Total: {_.price:.2f} EUR`, `{"_": {"price": 3}}`, `"Total: 3.00 EUR"`},
	{"template str of dict", `Data: {_}`, `{"_": {"a": "b"}}`, `"Data: {'a': 'b'}"`},
	{"template escapes", `a\tb {{_}}`, `{"_": 1}`, `"a\tb 1"`},
	{"template stripped", "  hello  ", ``, `"hello"`},
	{"plain text", `just text`, ``, `"just text"`},
	{"dollar without space", `$5 please`, ``, `"$5 please"`},
}

func TestEvaluateVectors(t *testing.T) {
	t.Parallel()
	all := append(append(append([]vector{}, sampleVectors...), libraryVectors...), languageVectors...)
	if len(all) < 60 {
		t.Fatalf("only %d vectors", len(all))
	}
	for _, tc := range all {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vars := decodeVars(t, tc.vars)
			got, err := Evaluate(context.Background(), tc.src, vars)
			if err != nil {
				t.Fatalf("Evaluate(%q): %v", tc.src, err)
			}
			if g, w := canon(t, got), canonJSON(t, tc.want); g != w {
				t.Fatalf("Evaluate(%q)\n got %s\nwant %s", tc.src, g, w)
			}
		})
	}
}

func TestResultTypes(t *testing.T) {
	t.Parallel()
	vars := map[string]any{"_": map[string]any{"n": 3.0, "f": 2.5, "i": 4, "j": int64(5)}}
	cases := []struct {
		src  string
		want any
	}{
		{"$ _.n", int64(3)},
		{"$ _.f", 2.5},
		{"$ _.i + _.j", int64(9)},
		{"$ float(_.n)", json.Number("3.0")}, // a whole float stays a float in JSON (Julep: 3.0)
		{"$ 'x'", "x"},
		{"$ None", nil},
		{"$ 1 == 1", true},
	}
	for _, c := range cases {
		got, err := Evaluate(context.Background(), c.src, vars)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		if got != c.want {
			t.Errorf("%s = %#v (%T), want %#v (%T)", c.src, got, got, c.want, c.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		src  string
		want string // substring of the message
	}{
		{"$ _.x +", `expression "$ _.x +": unexpected end of expression at column 8`},
		{"$ (1, 2", "never closed"},
		{"$ [1, 2)", "does not match"},
		{"$ 1 +* 2", "column 6"},
		{"$ x := 1", "column"},
		{"$ 'unterminated", "unterminated string"},
		{"$ 1j", "complex numbers"},
		{"$ # nothing", "empty expression"},
		{"Hello {", "template"},
		{"Hello {}", "empty expression"},
		{"Hello }", "single '}'"},
		{"{{ x + }}", "unexpected end"},
		{"$ f'{x!z}'", "conversion"},
		{"$ a\nb +", "line 2"},
		{"$ lambda: (yield)", "column"},
	}
	for _, c := range cases {
		err := Check(c.src)
		if err == nil {
			t.Errorf("Check(%q) = nil, want error containing %q", c.src, c.want)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) {
			t.Errorf("Check(%q) = %q, want it to contain %q", c.src, msg, c.want)
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("Check(%q) error is not one line: %q", c.src, msg)
		}
		if responder.ErrorCode(err) != responder.EINVALID {
			t.Errorf("Check(%q) code = %q, want invalid", c.src, responder.ErrorCode(err))
		}
	}
}

func TestRuntimeErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		src  string
		vars string
		want string
	}{
		{"$ 1/0", "", `evaluate "$ 1/0": division by zero`},
		{"$ 1 // 0", "", "division by zero"},
		{"$ undefined_name + 1", "", "name 'undefined_name' is not defined"},
		{"$ _.missing", `{"_": {}}`, `no key or attribute "missing"`},
		{"$ _['missing']", `{"_": {}}`, "missing"},
		{"$ steps['nope']", `{"steps": []}`, `no step labelled "nope"`},
		{"$ steps[3]", `{"steps": [{}]}`, "out of range"},
		{"$ 'a' + 1", "", "unknown binary op"},
		{"$ \"Bearer \" + {secrets.K}", `{"secrets": {"K": "s3cr3t-value"}}`, "unknown binary op"},
		{"$ int(secrets.K)", `{"secrets": {"K": "s3cr3t-value"}}`, "[redacted]"},
		{"$ [i for i in range(10**7)]", "", "range size exceeds maximum"},
		{"$ (lambda f: f(f))(lambda f: f(f))", "", "called recursively"},
		{"$ 'abc' * 100000000", "", "expression would build a 286.1 MB string; the limit is 16 MB"},
		{"$ [_ * 1000000 for i in range(1000)]", `{"_": "x"}`, "memory budget"},
		{"$ [x for x in range(1000000) for y in range(1000000)]", "", "step budget"},
		{"$ 10 ** 100000", "", "too large"},
		{"$ f'{[1]:>5}'", "", "unsupported format string"},
		{"$ _.__class__", `{"_": {}}`, "not allowed"},
		{"$ float('nan')", "", "JSON cannot represent"},
		{"$ json.loads('{bad')", "", "invalid JSON"},
		{"$ re.match('(', 'x')", "", "invalid regular expression"},
	}
	for _, c := range cases {
		vars := decodeVars(t, c.vars)
		p, err := Compile(c.src)
		if err != nil {
			t.Fatal(err)
		}
		// The messages are under test, not the clock (TestTimeout is).
		_, err = p.eval(context.Background(), vars, noClock)
		if err == nil {
			t.Errorf("Evaluate(%q) = nil error, want %q", c.src, c.want)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) {
			t.Errorf("Evaluate(%q) = %q, want it to contain %q", c.src, msg, c.want)
		}
		if strings.Contains(msg, "s3cr3t-value") {
			t.Errorf("Evaluate(%q) leaked a secret: %q", c.src, msg)
		}
		if strings.Contains(msg, "\n") {
			t.Errorf("Evaluate(%q) error is not one line: %q", c.src, msg)
		}
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	p, err := Compile("$ [x for x in range(1000000) for y in range(1000000)]")
	if err != nil {
		t.Fatal(err)
	}
	// No step limit: only the clock can stop it.
	_, err = p.eval(context.Background(), nil, limits{timeout: 20 * time.Millisecond, maxAlloc: 1 << 30})
	if err == nil || !strings.Contains(err.Error(), "timed out after 20ms") {
		t.Fatalf("err = %v, want a timeout", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = p.Eval(ctx, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err = p.eval(ctx, nil, limits{timeout: time.Minute, maxAlloc: 1 << 30})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
}

func TestIsExpression(t *testing.T) {
	t.Parallel()
	cases := map[string]bool{
		"$ 1":          true,
		"  $ x  ":      true,
		"_":            true,
		"_.x":          true,
		`_["x"]`:       true,
		"[1]":          true,
		"inputs[0].x":  true,
		"outputs[0]":   true,
		"{{ x }}":      true,
		"hello {x}":    false,
		"plain":        false,
		"$5":           false,
		"_x":           false,
		"len(_) > 0":   false,
		"[not closed":  false,
		"x + inputs":   false,
		"$":            false,
		"_[0] + 1 ]":   true,
		"before _.x":   false,
		"[a] and [b]":  true,
		"_.":           true,
		"text {{ _ }}": true,
	}
	for s, want := range cases {
		if got := IsExpression(s); got != want {
			t.Errorf("IsExpression(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestEvaluateValue(t *testing.T) {
	t.Parallel()
	in := map[string]any{
		"query":  "$ _.topic + ' news'",
		"limit":  3,
		"flags":  []any{"$ _.topic.upper()", true, nil, 2.5},
		"nested": map[string]any{"greeting": "Hi {_.topic}"},
	}
	got, err := EvaluateValue(context.Background(), in, map[string]any{"_": map[string]any{"topic": "go"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"flags":["GO",true,null,2.5],"limit":3,"nested":{"greeting":"Hi go"},"query":"go news"}`
	if g := canon(t, got); g != want {
		t.Fatalf("got %s, want %s", g, want)
	}
	if in["query"] != "$ _.topic + ' news'" {
		t.Fatal("EvaluateValue modified its input")
	}
	_, err = EvaluateValue(context.Background(), map[string]any{"a": []any{"$ 1/0"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "a[0]: evaluate") {
		t.Fatalf("err = %v, want the path a[0]", err)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	secrets := map[string]string{"A": "abc", "B": "abcdef", "E": ""}
	got := Redact("key=abcdef other=abc none=xyz", secrets)
	if got != "key=[redacted] other=[redacted] none=xyz" {
		t.Fatalf("Redact = %q", got)
	}
	if Redact("abc", nil) != "abc" {
		t.Fatal("Redact without secrets changed the string")
	}
}

func TestCacheReturnsSameProgram(t *testing.T) {
	t.Parallel()
	a, err := Compile("$ 40 + 2 # cache test")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Compile("$ 40 + 2 # cache test")
	if a != b {
		t.Fatal("second Compile did not hit the cache")
	}
	c := &lru{ll: list.New(), items: map[string]*list.Element{}}
	for i := 0; i < cacheMaxEntries+10; i++ {
		c.put(strings.Repeat("x", i+1), &Program{src: strings.Repeat("x", i+1)})
	}
	if c.ll.Len() > cacheMaxEntries {
		t.Fatalf("cache holds %d entries, max %d", c.ll.Len(), cacheMaxEntries)
	}
	if c.get("x") != nil {
		t.Fatal("oldest entry was not evicted")
	}
}

func TestConcurrentEvaluate(t *testing.T) {
	t.Parallel()
	p, err := Compile("$ [x * _.k for x in range(100)][-1]")
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func(g int) {
			for i := 0; i < 50; i++ {
				v, err := p.Eval(context.Background(), map[string]any{"_": map[string]any{"k": g}})
				if err != nil {
					errs <- err
					return
				}
				if v != int64(99*g) {
					errs <- errors.New("wrong result under concurrency")
					return
				}
			}
			errs <- nil
		}(g)
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
