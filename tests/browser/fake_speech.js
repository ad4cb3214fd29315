// A stand-in for the Web Speech API (SpeechRecognition), installed before the page loads (Playwright's
// add_init_script): window.__say(text, isFinal) hands a result to whichever recognition is listening,
// window.__listening() lists the running ones ("wake": continuous, "ptt": one utterance).
// Used by tests/browser/test_kiosk_mode.py and bench/kiosk_soak.py.
window.__recognitions = [];
class FakeRecognition {
  constructor() { this.running = false; this.lang = ""; this.continuous = false; window.__recognitions.push(this); }
  start() {
    if (this.running) throw new DOMException("already started", "InvalidStateError");
    this.running = true;
  }
  stop() { if (!this.running) return; this.running = false; setTimeout(() => this.onend && this.onend(), 0); }
  abort() { this.stop(); }
  say(text, isFinal) {
    const result = Object.assign([{ transcript: text, confidence: 0.9 }], { isFinal });
    this.onresult({ resultIndex: 0, results: [result] });
    if (isFinal && !this.continuous) this.stop();
  }
}
window.SpeechRecognition = FakeRecognition;
window.__listening = () => window.__recognitions.filter((r) => r.running).map((r) => r.continuous ? "wake" : "ptt");
window.__say = (text, isFinal = true) => {
  const r = window.__recognitions.find((r) => r.running);
  if (!r) return false;
  r.say(text, isFinal);
  return true;
};
