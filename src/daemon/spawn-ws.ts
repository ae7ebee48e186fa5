/**
 * The WebSocket, in one of two uses its first frame chooses. `spawn`: one program, as spawn();
 * then `stdin`, `stdin-end` and `kill` frames; the daemon sends `started`, `stdout` / `stderr`
 * (base64) and finally `exit` with the result, or `error`, and closes. `run`: any number of runs
 * over one connection, as /v1/run; each `{ type: 'run', id, options }` is answered by
 * `{ type: 'result', id, result }` or `{ type: 'error', id, status, error }` as it ends, and the
 * connection stays open; `{ type: 'cancel', id }` aborts that run (its box ends), answered by an
 * `error` of code `aborted`. A connection that drops aborts its box or its runs. Output is read from
 * the box only as fast as the client takes it: a stream is paused while the WebSocket has more
 * than HIGH_WATER bytes unsent.
 */
import type { Readable } from 'node:stream';
import type { WebSocket } from 'ws';

import { spawn, type Result, type SandboxProcess, type SpawnOptions } from '../index.js';
import { HttpError } from './http-error.js';
import { clientFrameEnvelope, issuesOf, type ClientFrame } from './schemas.js';
import { resultToJson, type ErrorJson, type ResultJson } from './wire.js';

/** Largest frame a client may send; larger ones close the connection (1009). */
export const MAX_CLIENT_FRAME = 1024 * 1024;
/** Output is cut into frames of at most this many bytes (before base64). */
export const MAX_OUTPUT_FRAME = 64 * 1024;
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;

export interface SpawnHooks {
  /** Aborted when the connection ends before the box does. */
  signal: AbortSignal;
  /**
   * The client's options decoded, checked and bounded by the policy, as for /v1/run, with
   * `signal` in them: spawn() takes them as they are, without checking them again.
   */
  options(body: unknown): SpawnOptions;
  /** Runs `fn` holding an admission slot for the whole spawn. */
  admitted(fn: (signal: AbortSignal) => Promise<Result>): Promise<Result>;
  /** A `run` frame's options run as /v1/run's, until `signal` aborts it: its result, as JSON. */
  run(body: unknown, signal: AbortSignal): Promise<ResultJson>;
  /** `close` is called when the daemon starts to drain (a connection of runs closes once they have ended); returns its removal. */
  onDrain(close: () => void): () => void;
  /** The status and body an error gets in a reply. */
  reply(e: unknown): { status: number; body: ErrorJson };
  /** Time the client has to send its `spawn` frame. */
  spawnTimeoutMs: number;
}

function badFrame(message: string): HttpError {
  return new HttpError(400, 'invalid-frame', message);
}

/** The answer of a run its client cancelled. */
function cancelled(): { status: number } & ErrorJson {
  return { status: 499, error: { code: 'aborted', message: 'the run was cancelled by the client' } };
}

/** Serves one WebSocket; resolves once the box (if any) has ended and the connection is closed. */
export function serveSpawn(ws: WebSocket, hooks: SpawnHooks): Promise<void> {
  let state: 'waiting' | 'starting' | 'running' | 'runs' | 'done' = 'waiting';
  /** Runs in flight on a connection of runs. */
  const runs = new Set<Promise<void>>();
  /** What cancels each run in flight, by its id (a later run may reuse an id once it has ended). */
  const cancels = new Map<string | number, AbortController>();
  let draining = false;
  /** Run frames are not read while the client leaves more than HIGH_WATER bytes of answers unread. */
  let answersPaused = false;
  /** Run frames read (in the same chunk) after reading was paused: started once it resumes. */
  const held: { id: string | number; options: unknown }[] = [];
  let proc: SandboxProcess | null = null;
  // Frames that came while the box was being started, applied in order once it runs.
  const pending: ClientFrame[] = [];
  const paused = new Set<Readable>();
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  let work: Promise<unknown> = Promise.resolve();

  const send = (frame: unknown): void => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(JSON.stringify(frame), (err) => {
      if (!err && ws.bufferedAmount <= LOW_WATER) {
        for (const s of paused) s.resume();
        paused.clear();
        if (answersPaused) {
          answersPaused = false;
          for (const f of held.splice(0)) startRun(f.id, f.options);
          ws.resume();
        }
      }
    });
  };

  const fail = (e: unknown): void => {
    if (state === 'done') return;
    state = 'done';
    const { status, body } = hooks.reply(e);
    send({ type: 'error', status, ...body });
    // Closing aborts the box (if one runs): an error ends the spawn.
    ws.close(status >= 500 ? 1011 : 1008, body.error.code);
  };

  const timer = setTimeout(() => fail(new HttpError(408, 'timeout', `no spawn frame within ${hooks.spawnTimeoutMs} ms`)), hooks.spawnTimeoutMs);

  const pump = (stream: Readable, type: 'stdout' | 'stderr'): Promise<void> =>
    new Promise((resolve) => {
      stream.on('data', (chunk: Buffer) => {
        for (let at = 0; at < chunk.length; at += MAX_OUTPUT_FRAME) send({ type, data: { base64: chunk.subarray(at, at + MAX_OUTPUT_FRAME).toString('base64') } });
        if (ws.bufferedAmount > HIGH_WATER) {
          stream.pause();
          paused.add(stream);
        }
      });
      stream.once('end', resolve);
      stream.once('close', resolve);
      stream.once('error', () => resolve());
    });

  const apply = (f: ClientFrame): void => {
    const p = proc as SandboxProcess;
    if (f.type === 'stdin') {
      const data = typeof f.data === 'string' ? Buffer.from(f.data, 'utf8') : Buffer.from(f.data.base64, 'base64');
      // Reading from the client waits while the program does not take its input.
      if (p.stdin !== null && !p.stdin.writableEnded && !p.stdin.write(data)) {
        ws.pause();
        p.stdin.once('drain', () => ws.resume());
      }
    } else if (f.type === 'stdin-end') {
      if (p.stdin !== null && !p.stdin.writableEnded) p.stdin.end();
    } else if (f.type === 'kill') {
      try {
        p.kill(f.signal as NodeJS.Signals | number | undefined);
      } catch (e) {
        fail(badFrame(`kill: ${(e as Error).message}`));
      }
    } else fail(badFrame('spawn was sent twice'));
  };

  const start = (options: SpawnOptions): void => {
    state = 'starting';
    work = hooks
      .admitted(async () => {
        const p = await spawn(options);
        proc = p;
        // The program's stdin closing early is the program's business, not an error of the daemon.
        p.stdin?.on('error', () => undefined);
        if (state === 'starting') state = 'running';
        send({ type: 'started', pid: p.pid });
        const output = Promise.all([pump(p.stdout, 'stdout'), pump(p.stderr, 'stderr')]);
        for (const f of pending.splice(0)) if (state === 'running') apply(f);
        const [result] = await Promise.all([p.wait(), output]);
        return result;
      })
      .then(
        (result) => {
          if (state !== 'running') return;
          state = 'done';
          send({ type: 'exit', result: resultToJson(result) });
          ws.close(1000, 'exit');
        },
        (e: unknown) => {
          if (!hooks.signal.aborted) fail(e);
        },
      );
  };

  const closeIfIdle = (): void => {
    if (draining && runs.size === 0 && state === 'runs') {
      state = 'done';
      ws.close(1001, 'draining');
    }
  };
  const noDrain = hooks.onDrain(() => {
    draining = true;
    closeIfIdle();
  });

  /** One run of a connection of runs: its answer, or its error, carries its id; the connection stays. */
  const startRun = (id: string | number, body: unknown): void => {
    if (cancels.has(id)) {
      const { status, body: error } = hooks.reply(badFrame(`run ${JSON.stringify(id)} is in flight already: ids of runs in flight must differ`));
      send({ type: 'error', id, status, ...error });
      return;
    }
    const cancel = new AbortController();
    cancels.set(id, cancel);
    const one = hooks
      .run(body, cancel.signal)
      .then(
        (result) => send({ type: 'result', id, result }),
        (e: unknown) => {
          if (hooks.signal.aborted) return;
          if (cancel.signal.aborted) {
            send({ type: 'error', id, ...cancelled() });
            return;
          }
          const { status, body: error } = hooks.reply(e);
          send({ type: 'error', id, status, ...error });
        },
      )
      .finally(() => {
        cancels.delete(id);
        runs.delete(one);
        closeIfIdle();
      });
    runs.add(one);
    work = Promise.all(runs);
  };

  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (state === 'done') return;
    let frame: ClientFrame;
    try {
      if (isBinary) throw badFrame('frames are JSON text, not binary');
      let value: unknown;
      try {
        value = JSON.parse(data.toString('utf8'));
      } catch (e) {
        throw badFrame(`a frame is not valid JSON (${(e as Error).message})`);
      }
      const parsed = clientFrameEnvelope.safeParse(value);
      if (!parsed.success) throw badFrame(issuesOf(parsed.error).map((i) => `${i.path || '(frame)'}: ${i.message}`).join('; '));
      frame = parsed.data;
      if (frame.type === 'run') {
        if (state !== 'waiting' && state !== 'runs') throw badFrame('run on a connection that spawned');
        clearTimeout(timer);
        state = 'runs';
        if (!answersPaused && ws.bufferedAmount > HIGH_WATER) {
          answersPaused = true;
          ws.pause();
        }
        if (answersPaused) held.push({ id: frame.id, options: frame.options });
        else startRun(frame.id, frame.options);
      } else if (frame.type === 'cancel') {
        if (state !== 'runs') throw badFrame('cancel on a connection without runs');
        // A run that ended already (its answer may be on its way) or was never sent: nothing to do.
        const id = frame.id;
        const heldAt = held.findIndex((h) => h.id === id);
        if (heldAt >= 0) {
          held.splice(heldAt, 1);
          send({ type: 'error', id, ...cancelled() });
        } else cancels.get(id)?.abort(new Error('cancelled by the client'));
      } else if (state === 'runs') throw badFrame(`${frame.type} on a connection of runs`);
      else if (frame.type === 'spawn') {
        if (state !== 'waiting') throw badFrame('spawn was sent twice');
        clearTimeout(timer);
        start(hooks.options(frame.options));
      } else if (state === 'waiting') throw badFrame(`${frame.type} before spawn`);
      else if (state === 'starting') pending.push(frame);
      else apply(frame);
    } catch (e) {
      fail(e);
    }
  });
  // An oversized frame or a broken connection: 'close' follows, which ends the box.
  ws.on('error', () => undefined);
  ws.on('close', () => {
    clearTimeout(timer);
    noDrain();
    state = 'done';
    for (const s of paused) s.resume();
    void work.then(() => resolveDone());
  });
  return done;
}
