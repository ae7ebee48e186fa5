/**
 * The daemon's metrics, in Prometheus' text format by prom-client, on a registry of the daemon's
 * own (nothing of the process's default registry). Counters are counted as requests and runs end,
 * as plain numbers handed to prom-client when scraped (its `inc` with labels hashes them and looks
 * the series up on every call: per run, on a daemon whose CPU is its throughput); gauges are read
 * from the daemon when scraped.
 */
import { Counter, Gauge, Registry } from 'prom-client';

export interface Gauges {
  queued: number;
  running: number;
  boxes: number;
  storeBytes: number;
  storeFiles: number;
  draining: boolean;
}

export class Metrics {
  private readonly registry = new Registry();
  private readonly runsBy = new Map<string, number>();
  private runSecondsTotal = 0;
  private readonly requestsBy = new Map<number, number>();

  constructor(gauges: () => Gauges) {
    const counted = <K>(name: string, help: string, label: string, by: Map<K, number>): void => {
      new Counter({
        name,
        help,
        labelNames: [label],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const [value, n] of by) this.inc({ [label]: String(value) }, n);
        },
      });
    };
    counted('sandcell_runs_total', 'Runs that ended, by result status (setup-error: the box could not be built).', 'status', this.runsBy);
    counted('sandcell_http_requests_total', 'HTTP requests answered, by status code.', 'code', this.requestsBy);
    const seconds = (): number => this.runSecondsTotal;
    new Counter({
      name: 'sandcell_run_seconds_total',
      help: 'Wall time spent in runs, from admission to result.',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(seconds());
      },
    });
    const gauge = (name: string, help: string, value: (g: Gauges) => number): void => {
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(value(gauges()));
        },
      });
    };
    gauge('sandcell_queue_length', 'Runs waiting for a slot.', (g) => g.queued);
    gauge('sandcell_running', 'Runs in progress.', (g) => g.running);
    gauge('sandcell_boxes', 'Living boxes held for clients.', (g) => g.boxes);
    gauge('sandcell_file_store_bytes', 'Bytes in the file store.', (g) => g.storeBytes);
    gauge('sandcell_file_store_files', 'Files in the file store.', (g) => g.storeFiles);
    gauge('sandcell_draining', '1 while the daemon drains before it exits.', (g) => (g.draining ? 1 : 0));
  }

  countRun(status: string, seconds: number): void {
    this.runsBy.set(status, (this.runsBy.get(status) ?? 0) + 1);
    this.runSecondsTotal += seconds;
  }

  countRequest(code: number): void {
    this.requestsBy.set(code, (this.requestsBy.get(code) ?? 0) + 1);
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ text: string; contentType: string }> {
    return { text: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
