// Voice in, where the browser has the Web Speech API (SpeechRecognition): wake listening on the
// attract screen (anything said engages the kiosk and is asked) and push-to-talk while engaged.
// Without it the page still works by touch and typing.

const Recognition = window.SpeechRecognition || window.webkitSpeechRecognition || null;
const RESTART_MS = 300; // Chromium ends continuous recognition by itself now and then
const BLOCKED = new Set(["not-allowed", "service-not-allowed", "audio-capture"]);

export class Voice {
  /**
   * @param {{lang: string, onHeard: (text: string, final: boolean, mode: string) => void}} options
   *   `onHeard` gets interim text (final: false) while the visitor speaks, then the final text once
   */
  constructor({ lang, onHeard }) {
    this.lang = lang;
    this.onHeard = onHeard;
    this.mode = null; // "wake" | "ptt" | null (not listening)
    this.blocked = false; // the browser refused the microphone: stop asking
    this.rec = null;
    this.running = false;
    this.interim = "";
    this.restart = null;
  }

  get available() {
    return Boolean(Recognition) && !this.blocked;
  }

  /** Listen continuously for a visitor (attract screen). */
  listenForWake() {
    this._start("wake");
  }

  /** Push-to-talk pressed. */
  hold() {
    this._start("ptt");
  }

  /** Push-to-talk released: what was heard so far is final. */
  letGo() {
    if (this.mode !== "ptt") return;
    this._stopRecognition();
  }

  /** Stop listening, whatever the mode. */
  stop() {
    this.mode = null;
    clearTimeout(this.restart);
    this._stopRecognition();
  }

  _recognition() {
    if (this.rec) return this.rec;
    const rec = new Recognition();
    rec.interimResults = true;
    rec.maxAlternatives = 1;
    rec.onresult = (e) => this._result(e);
    rec.onerror = (e) => {
      if (BLOCKED.has(e.error)) this.blocked = true;
    };
    rec.onend = () => {
      this.running = false;
      const mode = this.mode;
      if (mode === "ptt") {
        this.mode = null;
        if (this.interim) this._heard(this.interim, true, mode); // released before a final result
      } else if (mode === "wake" && !this.blocked) {
        this.restart = setTimeout(() => { if (this.mode === "wake") this._start("wake"); }, RESTART_MS);
      }
      this.interim = "";
    };
    this.rec = rec;
    return rec;
  }

  _start(mode) {
    if (!this.available) return;
    clearTimeout(this.restart);
    const rec = this._recognition();
    if (this.running && this.mode === mode) return;
    if (this.running) {
      // switch modes: the old session ends first (onend), then this mode starts
      this.mode = null;
      this._stopRecognition();
      this.restart = setTimeout(() => this._start(mode), RESTART_MS);
      return;
    }
    this.mode = mode;
    this.interim = "";
    rec.lang = this.lang;
    rec.continuous = mode === "wake";
    try {
      rec.start();
      this.running = true;
    } catch {
      this.running = false; // already starting: its onend restarts wake listening
    }
  }

  _stopRecognition() {
    if (!this.rec || !this.running) return;
    try { this.rec.stop(); } catch { /* not running */ }
  }

  _result(e) {
    let interim = "";
    for (let i = e.resultIndex; i < e.results.length; i++) {
      const result = e.results[i];
      const text = result[0]?.transcript?.trim() || "";
      if (!text) continue;
      if (result.isFinal) {
        this.interim = "";
        this._heard(text, true, this.mode);
      } else {
        interim = interim ? `${interim} ${text}` : text;
      }
    }
    if (interim) {
      this.interim = interim;
      this._heard(interim, false, this.mode);
    }
  }

  _heard(text, final, mode) {
    try { this.onHeard(text, final, mode || "wake"); } catch (err) { setTimeout(() => { throw err; }); }
  }
}
