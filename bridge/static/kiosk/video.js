// The avatar's video with the Agora Web SDK, when the page has it; the page forwards what the
// channel carries (the avatar's QA stream-messages, its audio starting and stopping) to the bridge.
// Without the SDK (offline, blocked, the simulator) the page shows its animated stand-in instead.

export class Video {
  /**
   * @param {{box: HTMLElement, agora: Promise<any>, onState: (state: string) => void}} options
   *   `onState`: "none" (no video), "joining", "playing", "stopped"
   */
  constructor({ box, agora, onState }) {
    this.box = box;
    this.agora = agora;
    this.onState = onState;
    this.rtc = null;
    this.room = null;
  }

  async start(room) {
    this.room = room;
    const AgoraRTC = await this.agora;
    if (this.room !== room || room.status === "closed") return;
    if (!AgoraRTC) {
      this.onState("none");
      return;
    }
    const info = room.info;
    try {
      AgoraRTC.setLogLevel?.(3);
      const rtc = AgoraRTC.createClient({ mode: "rtc", codec: "vp8" });
      this.rtc = rtc;
      rtc.on("user-published", async (user, mediaType) => {
        await rtc.subscribe(user, mediaType);
        if (mediaType === "video") {
          this.onState("playing");
          user.videoTrack.play(this.box, { fit: "cover" });
        } else if (mediaType === "audio") {
          user.audioTrack.play();
          room.forwardRtcEvent("audio_started", user.uid);
        }
      });
      rtc.on("user-unpublished", (user, mediaType) => {
        if (mediaType === "audio") room.forwardRtcEvent("audio_stopped", user.uid);
        if (mediaType === "video") this.onState("stopped");
      });
      rtc.on("user-left", (user) => room.forwardRtcEvent("audio_stopped", user.uid));
      rtc.on("stream-message", (uid, payload) => room.forwardRtcEvent("stream_message", uid, payload));
      this.onState("joining");
      await rtc.join(info.app_id, info.channel, info.token || null, info.uid ?? null);
      if (this.rtc !== rtc) await rtc.leave();
    } catch {
      this.rtc = null;
      this.onState("none");
    }
  }

  stop() {
    const rtc = this.rtc;
    this.rtc = null;
    this.room = null;
    if (rtc) rtc.leave().catch(() => {});
    this.box.replaceChildren();
    this.onState("none");
  }
}
