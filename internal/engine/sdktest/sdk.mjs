// Drives `astra engine` through Julep's official TypeScript SDK
// (@julep/sdk 2.7.2), asserting what each call answers. sdk_test.go runs
// it with JULEP_BASE_URL and JULEP_API_KEY set to a running engine.
import assert from 'node:assert/strict';
import Julep from '@julep/sdk';

const client = new Julep({ maxRetries: 0, timeout: 30_000 });
const done = [];
const step = async (name, fn) => {
  try {
    await fn();
    done.push(name);
  } catch (err) {
    console.error(`FAIL ${name}: ${err?.stack ?? err}`);
    process.exit(1);
  }
};
const all = async (page) => {
  const out = [];
  for await (const item of page) out.push(item);
  return out;
};

let agent, user, task, session, tool, agentDoc, userDoc;

await step('healthz', async () => {
  const h = await client.healthz.check();
  assert.equal(h.status, 'ok');
});

await step('agents.create/get/update/reset/list', async () => {
  agent = await client.agents.create({ name: 'Ada', about: 'a helper', model: 'gpt-4o-mini', instructions: ['be kind'] });
  assert.match(agent.id, /^[0-9a-f-]{36}$/);
  const got = await client.agents.get(agent.id);
  assert.equal(got.name, 'Ada');
  const upd = await client.agents.update(agent.id, { about: 'a careful helper', metadata: { tier: 'gold' } });
  assert.equal(upd.about, 'a careful helper');
  assert.equal(upd.name, 'Ada');
  const reset = await client.agents.reset(agent.id, { name: 'Ada', about: 'a careful helper', instructions: ['be kind'], model: 'gpt-4o-mini', metadata: { tier: 'gold' } });
  assert.deepEqual(reset.metadata, { tier: 'gold' });
  const ids = (await all(client.agents.list())).map((a) => a.id);
  assert.ok(ids.includes(agent.id));
});

await step('agents.tools create/list/update/delete', async () => {
  tool = await client.agents.tools.create(agent.id, { name: 'lookup', type: 'function', function: { description: 'look up', parameters: { type: 'object', properties: {} } } });
  await client.agents.tools.create(agent.id, { name: 'user_docs', type: 'system', system: { resource: 'user', subresource: 'doc', operation: 'list' } });
  await client.agents.tools.create(agent.id, { name: 'fetch', type: 'api_call', api_call: { method: 'GET', url: 'https://example.com/' } });
  const tools = await all(client.agents.tools.list(agent.id));
  assert.deepEqual(tools.map((t) => t.name).sort(), ['fetch', 'lookup', 'user_docs']);
  const upd = await client.agents.tools.update(agent.id, tool.id, { description: 'finds things' });
  assert.equal(upd.description, 'finds things');
  assert.equal(upd.name, 'lookup');
  await client.agents.tools.delete(agent.id, tool.id);
  assert.equal((await all(client.agents.tools.list(agent.id))).length, 2);
});

await step('users create/update/list', async () => {
  user = await client.users.create({ name: 'Bob', about: 'a tester', metadata: { ppid: 'p-1' } });
  const upd = await client.users.update(user.id, { metadata: { plan: 'pro' } });
  assert.deepEqual(upd.metadata, { ppid: 'p-1', plan: 'pro' });
  const found = await all(client.users.list({ metadata_filter: { ppid: 'p-1' } }));
  assert.ok(found.some((u) => u.id === user.id));
});

await step('docs: user and agent docs, get with embeddings, text and vector search', async () => {
  userDoc = await client.users.docs.create(user.id, { title: 'Pets', content: 'Bob has a cat named Tom', metadata: { kind: 'pets' } });
  await client.users.docs.create(user.id, { title: 'Work', content: ['Bob tests software', 'Bob likes green builds'] });
  agentDoc = await client.agents.docs.create(agent.id, { title: 'Manual', content: 'press the red button to start' });
  const got = await client.docs.get(userDoc.id);
  assert.equal(got.title, 'Pets');
  assert.equal(got.embeddings.length, 1024);
  const listed = await all(client.users.docs.list(user.id));
  assert.equal(listed.length, 2);
  const text = await client.users.docs.search(user.id, { text: 'cat' });
  assert.equal(text.docs[0].id, userDoc.id);
  const { vectors } = await client.docs.embed({ text: 'a cat called Tom' });
  assert.equal(vectors[0].length, 1024);
  const vec = await client.users.docs.search(user.id, { vector: vectors[0], confidence: -1, limit: 2 });
  assert.equal(vec.docs[0].id, userDoc.id);
  assert.ok(vec.docs[0].distance < vec.docs[1].distance);
  const hybrid = await client.users.docs.search(user.id, { text: 'green builds', vector: (await client.docs.embed({ text: 'green builds' })).vectors[0], confidence: -1, alpha: 0.5 });
  assert.equal(hybrid.docs[0].title, 'Work');
  const agentHits = await client.agents.docs.search(agent.id, { text: 'red button' });
  assert.equal(agentHits.docs[0].id, agentDoc.id);
  assert.equal(agentHits.docs[0].owner.role, 'agent');
});

await step('tasks and executions', async () => {
  task = await client.tasks.create(agent.id, {
    name: 'double',
    input_schema: { type: 'object', properties: { n: { type: 'number' } }, required: ['n'] },
    main: [{ evaluate: { twice: '$ _.n * 2' } }],
  });
  assert.equal((await client.tasks.get(task.id)).name, 'double');
  const ex = await client.executions.create(task.id, { input: { n: 21 } });
  let cur = ex;
  for (let i = 0; i < 200 && !['succeeded', 'failed', 'cancelled'].includes(cur.status); i++) {
    await new Promise((r) => setTimeout(r, 50));
    cur = await client.executions.get(ex.id);
  }
  assert.equal(cur.status, 'succeeded');
  assert.deepEqual(cur.output, { twice: 42 });
  const listed = await all(client.executions.list(task.id));
  assert.ok(listed.some((x) => x.id === ex.id));
  await assert.rejects(client.executions.create(task.id, { input: { n: 'x' } }), (err) => err.status === 400 || err.status === 422);
});

await step('sessions create/get/update/list, chat, stream, history, render', async () => {
  session = await client.sessions.create({ agent: agent.id, user: user.id, situation: 'a test', recall_options: { mode: 'text' } });
  assert.equal((await client.sessions.get(session.id)).situation, 'a test');
  const upd = await client.sessions.update(session.id, { metadata: { channel: 'sdk' } });
  assert.deepEqual(upd.metadata, { channel: 'sdk' });
  assert.ok((await all(client.sessions.list())).some((s) => s.id === session.id));
  const reply = await client.sessions.chat(session.id, { messages: [{ role: 'user', content: 'what is my cat called?' }] });
  const answer = reply.choices[0].message.content;
  assert.ok(typeof answer === 'string' && answer.length > 0);
  assert.equal(reply.docs[0].id, userDoc.id);
  const history = await client.sessions.history(session.id);
  assert.deepEqual(history.entries.map((e) => e.role), ['user', 'assistant']);
  assert.deepEqual(history.entries[1].content, [{ type: 'text', text: answer }]);
  const rendered = await client.sessions.render(session.id, { messages: [{ role: 'user', content: 'again' }] });
  assert.match(rendered.messages[0].content, /You are Ada\..*their name is Bob/s);
  assert.match(rendered.messages[0].content, /Situation: a test/);
  const stream = await client.sessions.chat(session.id, { stream: true, messages: [{ role: 'user', content: 'stream it' }] });
  const text = typeof stream === 'string' ? stream : JSON.stringify(stream);
  const chunks = text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)));
  assert.ok(chunks.length >= 2);
  const streamed = chunks.map((c) => c.choices[0].delta.content).join('');
  assert.ok(streamed.length > 0);
  let entries = [];
  for (let i = 0; i < 100 && entries.length < 4; i++) {
    entries = (await client.sessions.history(session.id)).entries;
    if (entries.length < 4) await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(entries[3].content[0].text, streamed);
});

await step('deletes', async () => {
  await client.sessions.delete(session.id);
  await assert.rejects(client.sessions.get(session.id), (err) => err.status === 404);
  await client.users.docs.delete(user.id, userDoc.id);
  await assert.rejects(client.docs.get(userDoc.id), (err) => err.status === 404);
  await client.agents.delete(agent.id);
  await assert.rejects(client.agents.get(agent.id), (err) => err.status === 404);
});

console.log(`ok ${done.length} areas: ${done.join('; ')}`);
