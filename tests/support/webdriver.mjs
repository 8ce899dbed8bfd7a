// A small W3C WebDriver client for the cross-engine browser tests (tests/engines/): it
// spawns the engine's own driver from the machine (never downloads one), talks to it
// with plain `fetch`, and cleans up everything it started.
//
//   const browser = await launch('firefox');      // 'chromium' | 'firefox' | 'webkit'
//   const page = await browser.session();         // one fresh browser profile
//   await page.goto(url); await page.run(() => p.flush()); await page.close();
//   await browser.close();
//
// Engines (DESIGN.md section 6): Chromium through /usr/bin/chromedriver, Firefox ESR
// through geckodriver (`GECKODRIVER`, else the copy .ci/setup installs off PATH),
// WebKitGTK's MiniBrowser through WebKitWebDriver under a private Xvfb display
// (MiniBrowser has no headless mode; without a display a new session hangs).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const ENGINES = ['chromium', 'firefox', 'webkit'];

const CHROMEDRIVER = process.env.CHROMEDRIVER || '/usr/bin/chromedriver';
const GECKODRIVER =
  process.env.GECKODRIVER || path.join(os.homedir(), '.cache/batch-event-processor/geckodriver/bin/geckodriver');
const WEBKITDRIVER = process.env.SAFARIDRIVER || '/usr/bin/WebKitWebDriver';
const MINIBROWSER = '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';

// Firefox preferences that keep a fresh profile off the network (geckodriver already
// sets most automation preferences; these cover what is left on Firefox ESR).
const FIREFOX_PREFS = {
  'app.update.enabled': false,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'browser.safebrowsing.downloads.enabled': false,
  'browser.search.update': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'datareporting.healthreport.uploadEnabled': false,
  'extensions.update.enabled': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'network.dns.disablePrefetch': true,
  'network.prefetch-next': false,
  'services.settings.server': 'http://127.0.0.1:9/',
  'toolkit.telemetry.enabled': false,
  'browser.newtabpage.enabled': false,
  'browser.startup.page': 0,
};

const ENGINE = {
  chromium: {
    driver: CHROMEDRIVER,
    args: (port) => [`--port=${port}`, '--allowed-ips=127.0.0.1'],
    capabilities: () => ({
      browserName: 'chrome',
      'goog:chromeOptions': {
        binary: '/usr/bin/chromium',
        args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
          '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
      },
    }),
  },
  firefox: {
    driver: GECKODRIVER,
    // --allow-system-access: chrome-context scripts (Firefox's own offline mode, setOffline).
    args: (port) => ['--host', '127.0.0.1', '--port', String(port), '--allow-system-access'],
    capabilities: () => ({
      browserName: 'firefox',
      'moz:firefoxOptions': { binary: '/usr/bin/firefox-esr', args: ['-headless'], prefs: FIREFOX_PREFS },
    }),
  },
  webkit: {
    driver: WEBKITDRIVER,
    display: true,
    args: (port) => [`--port=${port}`, '--host=127.0.0.1'],
    capabilities: () => ({
      browserName: 'MiniBrowser',
      'webkitgtk:browserOptions': { binary: MINIBROWSER, args: ['--automation'] },
    }),
  },
};

/** A free TCP port on 127.0.0.1 (released right away; the driver binds it next). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Kills a process group we spawned (detached), ignoring one that is gone already. */
function killGroup(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    // already gone
  }
}

/** Starts Xvfb on a display it picks itself (-displayfd); resolves `{ display, child }`. */
function startXvfb() {
  return new Promise((resolve, reject) => {
    const child = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', '1280x1024x24', '-nolisten', 'tcp'], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let out = '';
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`Xvfb exited (${code}): ${err.slice(-500)}`)));
    child.stdio[3].on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve({ display: `:${out.trim()}`, child });
    });
  });
}

/** One WebDriver request; throws the driver's error (name and message) on failure. */
async function request(base, method, route, body) {
  const res = await fetch(base + route, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`WebDriver ${method} ${route}: HTTP ${res.status} ${text.slice(0, 300)}`);
  }
  if (!res.ok || (json.value && json.value.error)) {
    const v = json.value || {};
    throw new Error(`WebDriver ${method} ${route}: ${v.error || res.status}: ${v.message || text.slice(0, 300)}`);
  }
  return json.value;
}

// The page side of `run()`: calls the function, awaits it, reports value or error.
const RUN = `const done = arguments[arguments.length - 1];
const args = Array.prototype.slice.call(arguments, 1, -1);
try {
  Promise.resolve(new Function('return (' + arguments[0] + ')')().apply(null, args)).then(
    (value) => done({ value: value === undefined ? null : value }),
    (e) => done({ thrown: String(e) + '\\n' + ((e && e.stack) || '') }));
} catch (e) { done({ thrown: String(e) + '\\n' + ((e && e.stack) || '') }); }`;

/** A WebDriver session: one browser instance with a fresh profile. */
class Session {
  constructor(browser, id) {
    this.browser = browser;
    this.engine = browser.engine;
    this.id = id;
    this.base = `${browser.base}/session/${id}`;
  }

  cmd(method, route, body) {
    return request(this.base, method, route, body);
  }

  /** Navigates and waits for the load event (WebDriver's page load strategy "normal"). */
  goto(url) {
    return this.cmd('POST', '/url', { url });
  }

  back() {
    return this.cmd('POST', '/back', {});
  }

  refresh() {
    return this.cmd('POST', '/refresh', {});
  }

  url() {
    return this.cmd('GET', '/url');
  }

  /**
   * Runs `fn(...args)` in the page (fn is serialized: it sees only page globals and
   * its JSON arguments), awaits its result and returns it; a throw or rejection in the
   * page is thrown here with the page's stack.
   */
  async run(fn, ...args) {
    const out = await this.cmd('POST', '/execute/async', { script: RUN, args: [String(fn), ...args] });
    if (out && out.thrown !== undefined) throw new Error(`in the ${this.engine} page: ${out.thrown}`);
    return out ? out.value : undefined;
  }

  /** Polls `fn(...args)` in the page until it returns a truthy value; returns it. */
  async waitFor(fn, { timeout = 10_000, interval = 50, args = [], what = String(fn) } = {}) {
    const deadline = Date.now() + timeout;
    let last;
    for (;;) {
      try {
        last = await this.run(fn, ...args);
        if (last) return last;
      } catch (e) {
        // a page in the middle of a navigation has no document to run in yet
        last = e.message;
      }
      if (Date.now() > deadline) throw new Error(`${this.engine}: timed out after ${timeout} ms waiting for ${what} (last: ${last})`);
      await sleep(interval);
    }
  }

  /** Opens a new tab and makes it current; returns its handle. */
  async newTab() {
    const { handle } = await this.cmd('POST', '/window/new', { type: 'tab' });
    await this.switchTo(handle);
    return handle;
  }

  async windowHandle() {
    return this.cmd('GET', '/window');
  }

  switchTo(handle) {
    return this.cmd('POST', '/window', { handle });
  }

  /** Chromium only: a Chrome DevTools Protocol command through chromedriver. */
  cdp(cmd, params = {}) {
    if (this.engine !== 'chromium') throw new Error(`cdp() is Chromium only, not ${this.engine}`);
    return this.cmd('POST', '/goog/cdp/execute', { cmd, params });
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    this.browser.sessions.delete(this);
    await this.cmd('DELETE', '').catch(() => {});
  }
}

/**
 * Starts the driver of `engine` (and Xvfb for WebKit) on 127.0.0.1. The returned
 * browser opens sessions with `session()` and stops everything with `close()`.
 */
export async function launch(engine) {
  const spec = ENGINE[engine];
  if (!spec) throw new Error(`unknown engine ${engine}; one of ${ENGINES.join(', ')}`);
  if (!existsSync(spec.driver)) throw new Error(`${engine}: driver ${spec.driver} is missing (run make setup)`);
  const env = { ...process.env };
  let xvfb;
  if (spec.display) {
    xvfb = await startXvfb();
    env.DISPLAY = xvfb.display;
  }
  const port = await freePort();
  const driver = spawn(spec.driver, spec.args(port), { env, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let log = '';
  driver.stderr.on('data', (d) => (log = (log + d).slice(-4000)));
  const cleanup = () => {
    killGroup(driver);
    killGroup(xvfb?.child);
  };
  process.once('exit', cleanup);
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (driver.exitCode !== null) throw new Error(`${engine}: ${spec.driver} exited: ${log}`);
    try {
      await fetch(`${base}/status`);
      break;
    } catch {
      if (i > 200) {
        cleanup();
        throw new Error(`${engine}: ${spec.driver} did not answer on ${base}: ${log}`);
      }
      await sleep(50);
    }
  }
  const browser = {
    engine,
    base,
    sessions: new Set(),
    driverLog: () => log,
    /** A new session (a new browser instance with a fresh profile). */
    async session() {
      const value = await request(base, 'POST', '/session', {
        capabilities: { alwaysMatch: spec.capabilities() },
      });
      const session = new Session(browser, value.sessionId);
      session.capabilities = value.capabilities;
      browser.sessions.add(session);
      await session.cmd('POST', '/timeouts', { script: 30_000, pageLoad: 30_000, implicit: 0 });
      return session;
    },
    async close() {
      for (const s of [...browser.sessions]) await s.close();
      cleanup();
      process.removeListener('exit', cleanup);
    },
  };
  return browser;
}
