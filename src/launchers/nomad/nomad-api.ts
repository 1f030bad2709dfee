import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import got, { HTTPError, RequestError, type Got } from 'got';
import { LauncherError, UsageError } from '../../errors.js';
import type { NomadSpec } from './section.js';

/** The parts of Nomad's API objects twister2 reads (Nomad returns much more). */
export interface NomadTaskEvent {
  Type: string;
  Time: number;
  DisplayMessage?: string;
  Details?: Record<string, string>;
  ExitCode?: number;
  Signal?: number;
}

export interface NomadAllocation {
  ID: string;
  Name: string;
  TaskGroup: string;
  ClientStatus: string;
  DesiredStatus: string;
  NodeID?: string;
  NodeName?: string;
  TaskStates?: Record<string, { State: string; Failed: boolean; Restarts: number; Events?: NomadTaskEvent[] } | undefined>;
}

export interface AllocationMetric {
  NodesEvaluated?: number;
  NodesFiltered?: number;
  NodesExhausted?: number;
  NodesAvailable?: Record<string, number>;
  ClassFiltered?: Record<string, number>;
  ConstraintFiltered?: Record<string, number>;
  ClassExhausted?: Record<string, number>;
  DimensionExhausted?: Record<string, number>;
  QuotaExhausted?: string[];
}

export interface NomadEvaluation {
  ID: string;
  Status: string;
  StatusDescription?: string;
  BlockedEval?: string;
  FailedTGAllocs?: Record<string, AllocationMetric> | null;
}

/** Nomad's HTTP API through got: ACL token from the environment, namespace and region on every call, TLS as configured. */
export interface NomadNode {
  ID: string;
  Name: string;
  Status: string;
  HostVolumes?: Record<string, { Path: string; ReadOnly?: boolean }> | null;
}

export class NomadApi {
  readonly address: string;
  private readonly http: Got;

  constructor(
    private readonly nomad: NomadSpec,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.address = (nomad.address ?? env.NOMAD_ADDR ?? 'http://127.0.0.1:4646').replace(/\/+$/, '');
    const token = env[nomad.tokenEnv];
    const tls = nomad.tls;
    this.http = got.extend({
      prefixUrl: this.address,
      headers: token ? { 'X-Nomad-Token': token } : {},
      searchParams: { ...(nomad.namespace ? { namespace: nomad.namespace } : {}), ...(nomad.region ? { region: nomad.region } : {}) },
      timeout: { request: 30_000 },
      retry: { limit: 2, methods: ['GET'] },
      https: tls
        ? {
            ...(tls.caCert ? { certificateAuthority: readFileSync(tls.caCert) } : {}),
            ...(tls.clientCert ? { certificate: readFileSync(tls.clientCert) } : {}),
            ...(tls.clientKey ? { key: readFileSync(tls.clientKey) } : {}),
            rejectUnauthorized: !tls.insecure,
          }
        : {},
    });
  }

  /** The query string every call carries (for URLs handed to others, e.g. the worker's purge URL). */
  scopeQuery(): string {
    const q = new URLSearchParams({ ...(this.nomad.namespace ? { namespace: this.nomad.namespace } : {}), ...(this.nomad.region ? { region: this.nomad.region } : {}) });
    return q.size ? `&${q}` : '';
  }

  async validate(job: object): Promise<{ errors: string[]; warnings: string }> {
    const r = await this.call<{ ValidationErrors?: string[] | null; Error?: string; Warnings?: string }>('validate the job', () =>
      this.http.post('v1/validate/job', { json: { Job: job } }).json(),
    );
    return { errors: r.ValidationErrors ?? (r.Error ? [r.Error] : []), warnings: r.Warnings ?? '' };
  }

  async register(job: object): Promise<{ EvalID: string; Warnings?: string }> {
    return this.call('register the job', () => this.http.post('v1/jobs', { json: { Job: job } }).json());
  }

  async evaluation(id: string): Promise<NomadEvaluation> {
    return this.call(`read evaluation ${id}`, () => this.http.get(`v1/evaluation/${id}`).json());
  }

  async allocations(jobId: string): Promise<NomadAllocation[]> {
    return this.call(`list the allocations of job ${jobId}`, () => this.http.get(`v1/job/${encodeURIComponent(jobId)}/allocations`, { searchParams: { ...this.scope(), all: 'true' } }).json());
  }

  /** The client nodes, with their host volumes (name → path on the node). */
  async nodes(): Promise<NomadNode[]> {
    return this.call('list the client nodes', () => this.http.get('v1/nodes').json());
  }

  /** The job, or undefined once Nomad no longer has it (purged). */
  async job(jobId: string): Promise<{ Status: string } | undefined> {
    try {
      return await this.http.get(`v1/job/${encodeURIComponent(jobId)}`).json();
    } catch (err) {
      if (err instanceof HTTPError && err.response.statusCode === 404) return undefined;
      throw this.error(`read job ${jobId}`, err);
    }
  }

  async stop(jobId: string, purge: boolean): Promise<void> {
    await this.call(`${purge ? 'purge' : 'stop'} job ${jobId}`, () =>
      this.http.delete(`v1/job/${encodeURIComponent(jobId)}`, { searchParams: { ...this.scope(), purge: String(purge) } }).json(),
    );
  }

  async scale(jobId: string, group: string, count: number): Promise<void> {
    await this.call(`scale job ${jobId} to ${count}`, () =>
      this.http.post(`v1/job/${encodeURIComponent(jobId)}/scale`, { json: { Count: count, Target: { Group: group }, Message: `twister2: scale to ${count}` } }).json(),
    );
  }

  async putVariable(path: string, items: Record<string, string>): Promise<void> {
    await this.call(`store variable ${path}`, () =>
      this.http.put(`v1/var/${path}`, { json: { Path: path, ...(this.nomad.namespace ? { Namespace: this.nomad.namespace } : {}), Items: items } }).json(),
    );
  }

  /** A variable's items and ModifyIndex, or undefined when there is none. */
  async variable(path: string): Promise<{ items: Record<string, string>; index: number } | undefined> {
    try {
      const v = await this.http.get(`v1/var/${path}`, { searchParams: this.scope() }).json<{ Items?: Record<string, string>; ModifyIndex: number }>();
      return { items: v.Items ?? {}, index: v.ModifyIndex };
    } catch (err) {
      if (err instanceof HTTPError && err.response.statusCode === 404) return undefined;
      throw this.error(`read variable ${path}`, err);
    }
  }

  /** Stores `items` only while the variable's ModifyIndex is `cas` (0: while there is none): its new index, or undefined when it changed meanwhile (409). */
  async putVariableIfUnchanged(path: string, items: Record<string, string>, cas: number): Promise<number | undefined> {
    try {
      const body = { Path: path, ...(this.nomad.namespace ? { Namespace: this.nomad.namespace } : {}), Items: items };
      const v = await this.http.put(`v1/var/${path}`, { searchParams: { ...this.scope(), cas: String(cas) }, json: body }).json<{ ModifyIndex: number }>();
      return v.ModifyIndex;
    } catch (err) {
      if (err instanceof HTTPError && err.response.statusCode === 409) return undefined;
      throw this.error(`store variable ${path}`, err);
    }
  }

  /** The paths of the variables under `prefix`. */
  async variablePaths(prefix: string): Promise<string[]> {
    const list = await this.call(`list the variables under ${prefix}`, () => this.http.get('v1/vars', { searchParams: { ...this.scope(), prefix } }).json<{ Path: string }[] | null>());
    return (list ?? []).map((v) => v.Path);
  }

  async deleteVariable(path: string): Promise<void> {
    try {
      await this.http.delete(`v1/var/${path}`);
    } catch (err) {
      if (err instanceof HTTPError && err.response.statusCode === 404) return;
      throw this.error(`delete variable ${path}`, err);
    }
  }

  /**
   * A task's stdout or stderr from byte `offset`: followed (Nomad keeps the stream open until the
   * allocation is gone), or with `follow: false` what there is now, read once.
   */
  logStream(allocId: string, task: string, type: 'stdout' | 'stderr', offset = 0, follow = true): Readable {
    return this.http.stream(`v1/client/fs/logs/${allocId}`, {
      searchParams: { ...this.scope(), task, type, ...(follow ? { follow: 'true' } : {}), origin: 'start', offset: String(offset), plain: 'true' },
      // A read once may be long (it is written out with backpressure): bound only the wait for an answer.
      timeout: follow ? {} : { response: 30_000 },
      retry: { limit: 0 },
    });
  }

  private scope(): Record<string, string> {
    return { ...(this.nomad.namespace ? { namespace: this.nomad.namespace } : {}), ...(this.nomad.region ? { region: this.nomad.region } : {}) };
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.error(what, err);
    }
  }

  /** Nomad's own words reach the user: its response body is the message. */
  private error(what: string, err: unknown): Error {
    if (err instanceof HTTPError) {
      const body = String(err.response.body ?? '').trim();
      const status = err.response.statusCode;
      const said = body || err.message;
      if (status === 403) return new UsageError(`Nomad at ${this.address} refused to ${what}: ${said} (set the ACL token in $${this.nomad.tokenEnv})`);
      return new LauncherError(`Nomad at ${this.address} could not ${what}: ${said} (HTTP ${status})`);
    }
    if (err instanceof RequestError && ['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT'].includes(err.code)) {
      return new UsageError(`cannot reach Nomad at ${this.address} (${err.code}); start a Nomad agent or set nomad.address / $NOMAD_ADDR`);
    }
    return new LauncherError(`Nomad at ${this.address}: could not ${what}: ${(err as Error).message}`);
  }
}
