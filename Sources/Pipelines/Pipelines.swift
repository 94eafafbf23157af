/// Pipelines: generate, inpaint, upscale, image-to-image and text-to-image; the one API the
/// command-line tool calls.
public enum Pipelines {}
