// A fake HTTP/1.1 server on a Unix socket in a temp dir, for tests of the client: it frames
// requests (head, content-length body) and leaves every byte of each reply to the test.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SeenRequest {
  head: string;
  body: string;
  /** Which connection it came on, from 1. */
  conn: number;
}

export interface FakeHttpServer {
  path: string;
  seen: SeenRequest[];
  connections: () => number;
  open: () => number;
  stop: () => Promise<void>;
}

/** `answer` gets each request and writes the reply itself, in as many writes as it likes, or none. */
export async function fakeHttpServer(answer: (r: SeenRequest, socket: Socket) => void): Promise<FakeHttpServer> {
  const dir = mkdtempSync(join(tmpdir(), 'sandcell-fake-http-'));
  const path = join(dir, 's.sock');
  const seen: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  let conns = 0;
  const srv: Server = createServer((socket) => {
    const conn = ++conns;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        const len = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        const r = { head, body: buf.subarray(end + 4, end + 4 + len).toString('utf8'), conn };
        buf = buf.subarray(end + 4 + len);
        seen.push(r);
        answer(r, socket);
      }
    });
  });
  await new Promise<void>((r) => srv.listen(path, r));
  return {
    path,
    seen,
    connections: () => conns,
    open: () => sockets.size,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A 200 reply with a JSON body and its content-length; `head` adds header lines before it. */
export const jsonReply = (body: string, head = ''): string =>
  `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n${head}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
