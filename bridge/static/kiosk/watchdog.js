// The watchdog: a speak or ask that A2E accepted but the avatar never started speaking.
//
// Each command is registered when it is sent; the first speaking_started after it (even one that
// overtakes the ack) settles it. The clock runs only while the avatar is silent: from the ack, or
// from the end of the utterance before it, so a command queued behind a long answer is not blamed
// for the wait. After `seconds` of silence with a command unsettled, `onFire` is called once and
// the pending commands are forgotten. `seconds` 0 switches it off.

export class Watchdog {
  /**
   * @param {{seconds: number, onFire: (report: {kind: string, waitedSeconds: number}) => void}} options
   */
  constructor({ seconds, onFire }) {
    this.ms = seconds * 1000;
    this.onFire = onFire;
    this.pending = []; // [{kind, acked, at}] oldest first
    this.speaking = false;
    this.timer = null;
  }

  /** A command was sent; returns its entry (for accepted/cancel). */
  sent(kind) {
    const entry = { kind, acked: false, at: Date.now() };
    this.pending.push(entry);
    return entry;
  }

  /** The bridge acked it (A2E accepted it): the clock may start. */
  accepted(entry) {
    if (!this.pending.includes(entry)) return; // already settled by a speaking_started
    entry.acked = true;
    entry.at = Date.now();
    this._arm();
  }

  /** It failed: nothing to wait for. */
  cancel(entry) {
    this.pending = this.pending.filter((e) => e !== entry);
    if (!this.pending.some((e) => e.acked)) this._clear();
  }

  started() {
    this.speaking = true;
    this.pending.shift();
    this._clear();
  }

  stopped() {
    this.speaking = false;
    for (const e of this.pending) if (e.acked) e.at = Date.now(); // the wait starts again now
    this._arm();
  }

  reset() {
    this.pending = [];
    this.speaking = false;
    this._clear();
  }

  _arm() {
    if (!this.ms || this.speaking || this.timer || !this.pending.some((e) => e.acked)) return;
    this.timer = setTimeout(() => this._fire(), this.ms);
  }

  _clear() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  _fire() {
    this.timer = null;
    const first = this.pending.find((e) => e.acked);
    if (!first || this.speaking) return;
    this.pending = [];
    this.onFire({ kind: first.kind, waitedSeconds: (Date.now() - first.at) / 1000 });
  }
}
