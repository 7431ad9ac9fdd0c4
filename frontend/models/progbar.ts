// Keras-style progress output for fit/evaluate: "250/250 ━━━━━━━━━━━━━━━━━━━━ 2s 6ms/step - loss: 0.3120".
export class Progbar {
  private readonly start = Date.now();
  private lastDraw = 0;
  private readonly tty: boolean;
  private readonly print: (text: string) => void;

  constructor(
    private readonly steps: number,
    private readonly verbose: number,
    print?: (text: string) => void,
    header?: string,
  ) {
    this.tty = !print && Boolean(process.stdout.isTTY);
    this.print = print ?? ((t) => process.stdout.write(t));
    if (header && verbose > 0) this.print(`${header}\n`);
  }

  private static value(v: number): string {
    return Math.abs(v) > 1e-3 || v === 0 ? v.toFixed(4) : v.toExponential(4);
  }

  private line(step: number, logs: Record<string, number>, done: boolean): string {
    const elapsed = (Date.now() - this.start) / 1000;
    const perStep = (elapsed * 1000) / Math.max(1, step);
    const metrics = Object.entries(logs).map(([k, v]) => ` - ${k}: ${Progbar.value(v)}`).join('');
    const stepText = perStep >= 1 ? `${Math.round(perStep)}ms/step` : `${Math.round(perStep * 1000)}us/step`;
    const count = `${String(step).padStart(String(this.steps).length)}/${this.steps}`;
    if (this.verbose === 2) return `${count} - ${Math.round(elapsed)}s - ${stepText}${metrics}`;
    const filled = Math.round((20 * step) / this.steps);
    const bar = '━'.repeat(filled) + (filled < 20 ? '─'.repeat(20 - filled) : '');
    const time = done ? `${Math.round(elapsed)}s` : `${Math.round(((this.steps - step) * perStep) / 1000)}s`;
    return `${count} ${bar} ${time} ${stepText}${metrics}`;
  }

  /** Redraws the bar in place on a terminal, at most every 50 ms. */
  update(step: number, logs: Record<string, number>): void {
    if (this.verbose !== 1 || !this.tty || step === this.steps) return;
    const now = Date.now();
    if (now - this.lastDraw < 50) return;
    this.lastDraw = now;
    this.print(`\r${this.line(step, logs, false)}\x1b[K`);
  }

  finish(logs: Record<string, number>): void {
    if (this.verbose === 0) return;
    this.print(`${this.tty && this.verbose === 1 ? '\r' : ''}${this.line(this.steps, logs, true)}${this.tty ? '\x1b[K' : ''}\n`);
  }
}
