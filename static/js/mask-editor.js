// The input picture of an image-to-image task and the inpainting mask painted over it with the
// pointer (mouse, pen or finger). The mask canvas has the picture's own pixel size, so what is sent
// matches the picture pixel for pixel (the server refuses a mask of another size); it is displayed
// scaled over the picture, and the brush is sized in screen pixels, as the user sees it.

/** The colour painted strokes are shown in; only their alpha matters for the mask sent. */
const STROKE_STYLE = "#ff3d7f";

export class MaskEditor {
  /** `image`: an <img> showing the picture; `canvas`: the mask laid over it. `onChange` is told
   * whenever the picture or the mask changes. */
  constructor(image, canvas, { onChange = null } = {}) {
    this.image = image;
    this.canvas = canvas;
    this.context = canvas.getContext("2d", { willReadFrequently: true });
    this.onChange = onChange;
    this.picture = null; // the picture as a Blob, to upload
    this.objectUrl = null;
    this.tool = "paint"; // or "erase"
    this.brush = 32; // screen pixels
    this.painted = false;
    this.stroke = null; // {pointerId, x, y} while the pointer paints
    canvas.addEventListener("pointerdown", (event) => this.#down(event));
    canvas.addEventListener("pointermove", (event) => this.#move(event));
    for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) canvas.addEventListener(type, (event) => this.#up(event));
  }

  get hasPicture() {
    return this.picture !== null;
  }

  /** Show `blob` as the picture, with an empty mask of its size; resolves to its [width, height],
   * or rejects when the browser cannot decode it. */
  async load(blob) {
    const url = URL.createObjectURL(blob);
    const probe = new Image();
    probe.src = url;
    try {
      await probe.decode();
    } catch (error) {
      URL.revokeObjectURL(url);
      throw error;
    }
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    this.objectUrl = url;
    this.picture = blob;
    this.image.src = url;
    this.canvas.width = probe.naturalWidth;
    this.canvas.height = probe.naturalHeight;
    this.clear();
    return [probe.naturalWidth, probe.naturalHeight];
  }

  /** Take a mask as the server keeps it (greyscale, white repainted) as the painted strokes. */
  async loadMask(blob) {
    const bitmap = await createImageBitmap(blob, { resizeWidth: this.canvas.width, resizeHeight: this.canvas.height });
    this.context.globalCompositeOperation = "source-over";
    this.context.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.context.drawImage(bitmap, 0, 0);
    bitmap.close();
    const pixels = this.context.getImageData(0, 0, this.canvas.width, this.canvas.height);
    const [red, green, blue] = [1, 3, 5].map((at) => parseInt(STROKE_STYLE.slice(at, at + 2), 16));
    for (let i = 0; i < pixels.data.length; i += 4) {
      const alpha = pixels.data[i]; // grey: every channel is the same
      pixels.data.set([red, green, blue, alpha], i);
    }
    this.context.putImageData(pixels, 0, 0);
    this.#changed();
  }

  /** No picture any more (text to image again). */
  remove() {
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    this.objectUrl = null;
    this.picture = null;
    this.image.removeAttribute("src");
    this.clear();
  }

  clear() {
    this.context.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.#changed();
  }

  /** The mask to send: a PNG the picture's size, white where painted and black elsewhere (the
   * strokes' soft edges grey); null when nothing is painted (the whole picture is transformed). */
  async maskDataUrl() {
    if (!this.painted) return null;
    const out = document.createElement("canvas");
    out.width = this.canvas.width;
    out.height = this.canvas.height;
    const context = out.getContext("2d");
    context.drawImage(this.canvas, 0, 0);
    context.globalCompositeOperation = "source-in"; // the strokes' alpha, in white
    context.fillStyle = "#fff";
    context.fillRect(0, 0, out.width, out.height);
    context.globalCompositeOperation = "destination-over"; // black under them
    context.fillStyle = "#000";
    context.fillRect(0, 0, out.width, out.height);
    return out.toDataURL("image/png");
  }

  #point(event) {
    const box = this.canvas.getBoundingClientRect();
    const scale = this.canvas.width / box.width;
    return { x: (event.clientX - box.left) * scale, y: (event.clientY - box.top) * scale, scale };
  }

  #down(event) {
    if (!this.hasPicture || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    this.canvas.setPointerCapture(event.pointerId);
    const { x, y } = this.#point(event);
    this.stroke = { pointerId: event.pointerId, x, y };
    this.#segment(x, y, x, y, event);
  }

  #move(event) {
    if (this.stroke?.pointerId !== event.pointerId) return;
    // a fast pointer reports several positions per frame: draw through all of them
    for (const sample of event.getCoalescedEvents?.() ?? [event]) {
      const { x, y } = this.#point(sample);
      this.#segment(this.stroke.x, this.stroke.y, x, y, event);
      this.stroke.x = x;
      this.stroke.y = y;
    }
  }

  #up(event) {
    if (this.stroke?.pointerId !== event.pointerId) return;
    this.stroke = null;
    this.#changed();
  }

  #segment(fromX, fromY, toX, toY, event) {
    const { scale } = this.#point(event);
    const context = this.context;
    context.globalCompositeOperation = this.tool === "erase" ? "destination-out" : "source-over";
    context.strokeStyle = STROKE_STYLE;
    context.lineWidth = this.brush * scale;
    context.lineCap = "round";
    context.lineJoin = "round";
    context.beginPath();
    context.moveTo(fromX, fromY);
    context.lineTo(toX, toY);
    context.stroke();
  }

  #changed() {
    this.painted = this.#anyPainted();
    this.canvas.dataset.painted = String(this.painted);
    this.onChange?.();
  }

  #anyPainted() {
    if (!this.hasPicture || this.canvas.width === 0) return false;
    const { data } = this.context.getImageData(0, 0, this.canvas.width, this.canvas.height);
    for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) return true;
    return false;
  }
}
