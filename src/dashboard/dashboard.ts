import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, type ServerType } from '@hono/node-server';
import { Hono, type Context } from 'hono';
import type { DashboardCommand } from '../protocol/dashboard-report.js';
import { DashboardAccess } from './access.js';
import { apiRoutes } from './api-routes.js';
import { HomeWatcher } from './home-watcher.js';
import { JobBoard } from './job-board.js';
import { login, requireAccess, securityHeaders } from './security.js';

export interface DashboardOptions {
  host: string;
  port: number;
  /** Token, report key and history (default $TWISTER2_HOME/dashboard). */
  dataDir: string;
  /** Ended jobs kept (default 200). */
  maxEnded?: number;
}

const UI_DIR = fileURLToPath(new URL('./ui/', import.meta.url));
const UI_FILES: Record<string, string> = { 'app.js': 'text/javascript; charset=utf-8', 'style.css': 'text/css; charset=utf-8' };

/**
 * `twister2 dashboard`: one web server for a site. It watches the jobs of this machine's TWISTER2_HOME
 * and takes reports from job masters elsewhere (spec `dashboard.url`), and serves the page and its API.
 */
export class Dashboard {
  readonly access: DashboardAccess;
  readonly board: JobBoard;
  private readonly home: HomeWatcher;
  private server: ServerType | undefined;
  private housekeeping: NodeJS.Timeout | undefined;

  constructor(private readonly opts: DashboardOptions) {
    this.access = new DashboardAccess(opts.dataDir);
    this.board = new JobBoard(path.join(opts.dataDir, 'history.json'), opts.maxEnded);
    this.home = new HomeWatcher(this.board);
  }

  /** Listens, and returns its address. */
  async start(): Promise<string> {
    await this.board.load();
    const app = this.app();
    const server = serve({ fetch: app.fetch, hostname: this.opts.host, port: this.opts.port });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
    this.home.start();
    this.housekeeping = setInterval(() => {
      this.board.markStale();
      void this.board.save();
    }, 5000);
    const { port } = server.address() as AddressInfo;
    const host = this.opts.host.includes(':') ? `[${this.opts.host}]` : this.opts.host;
    return `http://${host}:${port}`;
  }

  async stop(): Promise<void> {
    clearInterval(this.housekeeping);
    this.home.stop();
    await this.board.save();
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      // Event streams stay open until their browsers go: end them.
      (server as { closeAllConnections?: () => void }).closeAllConnections?.();
    });
  }

  private app(): Hono {
    const app = new Hono();
    const commands = new Map<string, DashboardCommand[]>();
    const ui = Object.fromEntries(['index.html', ...Object.keys(UI_FILES)].map((f) => [f, readFileSync(path.join(UI_DIR, f), 'utf8')]));
    app.use('*', securityHeaders);
    app.route('/api', apiRoutes({ access: this.access, board: this.board, home: this.home, commands }));
    app.get('/', (c, next) => login(this.access, c) ?? next());
    app.use('*', requireAccess(this.access));
    const page = (c: Context) => c.html(ui['index.html']!);
    app.get('/', page);
    app.get('/jobs/:jobId', page);
    app.get('/ui/:file', (c) => {
      const file = c.req.param('file');
      const type = UI_FILES[file];
      return type ? c.body(ui[file]!, 200, { 'content-type': type }) : c.notFound();
    });
    return app;
  }
}
