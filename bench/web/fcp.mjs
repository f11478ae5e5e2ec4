// First contentful paint of a finished run's page, in Debian's Chromium, against the release
// build — plus the size of what the browser downloads. Run from the repository root after
// `cargo leptos build --release` (scripts/test.sh does it):
//
//   node bench/web/fcp.mjs [--runs 20]
//
// A server is started on a free port with a fresh SQLite database; one run is analysed to
// completion; then its page is loaded N times, each in a new browser context (cold cache,
// fresh connection), and `first-contentful-paint` is read from the Performance API.

import http from 'node:http';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

const require = createRequire(path.resolve('end2end/package.json'));
const { chromium } = require('@playwright/test');

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1] || 20);
const db = path.join(os.tmpdir(), `ta-fcp-${Date.now()}.db`);
const server = spawn('target/release/server', ['serve', '--addr', '127.0.0.1:0'], {
  env: { ...process.env, DATABASE_URL: `sqlite://${db}`, SIMULATED_LATENCY_MS: '0', RUST_LOG: 'warn', LEPTOS_SITE_ROOT: 'target/site' },
  stdio: ['ignore', 'pipe', 'inherit'],
});
const base = await new Promise((resolve, reject) => {
  server.stdout.on('data', (d) => {
    const m = /listening on (http:\/\/\S+)/.exec(d.toString());
    if (m) resolve(m[1]);
  });
  server.on('exit', (code) => reject(new Error(`server exited ${code}`)));
});

try {
  // A session cookie from a first page load, then one finished run.
  // (node:http, not fetch: fetch marks every request as a script's, which gets no identity.)
  const cookie = await new Promise((resolve, reject) => {
    http.get(`${base}/`, (res) => {
      res.resume();
      const set = res.headers['set-cookie'];
      if (set) resolve(set[0].split(';')[0]);
      else reject(new Error('the home page set no session cookie'));
    }).on('error', reject);
  });
  const start = await fetch(`${base}/api/trading/run`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie },
    body: JSON.stringify({ symbol: 'AAPL' }),
  });
  const { runId } = await start.json();
  for (;;) {
    const p = await (await fetch(`${base}/api/trading/progress/${runId}`, { headers: { cookie } })).json();
    if (p.status === 'completed') break;
    if (p.status !== 'pending' && p.status !== 'running') throw new Error(`run ended ${p.status}`);
    await new Promise((r) => setTimeout(r, 50));
  }

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  const [name, value] = cookie.split('=');
  const fcp = [], html = [], hydrated = [];
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext();
    await context.addCookies([{ name, value, url: base }]);
    const page = await context.newPage();
    const t0 = Date.now();
    await page.goto(`${base}/runs/${runId}`, { waitUntil: 'load' });
    await page.waitForSelector('body[data-hydrated="true"]');
    hydrated.push(Date.now() - t0);
    const m = await page.evaluate(() => {
      const paint = performance.getEntriesByName('first-contentful-paint')[0];
      const nav = performance.getEntriesByType('navigation')[0];
      return { fcp: paint ? paint.startTime : NaN, html: nav.responseEnd - nav.requestStart };
    });
    fcp.push(m.fcp);
    html.push(m.html);
    await context.close();
  }
  await browser.close();

  const pkg = 'target/site/pkg';
  const size = (f) => fs.statSync(path.join(pkg, f)).size;
  const gz = (f) => zlib.gzipSync(fs.readFileSync(path.join(pkg, f)), { level: 9 }).length;
  const q = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
  const kb = (b) => (b / 1024).toFixed(1);
  console.log(`web benchmark: ${runs} cold loads of a finished run's page; ${os.cpus().length} CPUs (${os.cpus()[0].model.trim()})`);
  console.log('');
  console.log('| measure | median | p90 | max |');
  console.log('|---|---:|---:|---:|');
  for (const [label, xs] of [['first contentful paint (ms)', fcp], ['HTML response (ms)', html], ['until the island is hydrated (ms)', hydrated]]) {
    console.log(`| ${label} | ${q(xs, 0.5).toFixed(0)} | ${q(xs, 0.9).toFixed(0)} | ${Math.max(...xs).toFixed(0)} |`);
  }
  console.log('');
  console.log('| file | raw KB | gzip -9 KB |');
  console.log('|---|---:|---:|');
  for (const f of fs.readdirSync(pkg).filter((f) => /\.(wasm|js|css)$/.test(f)).sort()) {
    console.log(`| ${f} | ${kb(size(f))} | ${kb(gz(f))} |`);
  }
} finally {
  server.kill();
  for (const s of ['', '-wal', '-shm']) fs.rmSync(db + s, { force: true });
}
