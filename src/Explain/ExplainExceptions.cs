namespace SaliencyService.Explain;

/// <summary>
/// A failure the caller can fix: what was sent (an argument, a file, a model) cannot be used. The
/// engine knows no HTTP; the service maps each type to its status in one place.
/// </summary>
public abstract class ClientInputException(string message) : Exception(message);

/// <summary>A parameter or input that is malformed or out of range.</summary>
public sealed class InvalidArgumentException(string message) : ClientInputException(message);

/// <summary>An input larger than the configured limits.</summary>
public sealed class InputTooLargeException(string message) : ClientInputException(message);

/// <summary>A file that is not of a format the engine reads (an upload that is not a PNG or JPEG).</summary>
public sealed class UnsupportedFormatException(string message) : ClientInputException(message);

/// <summary>A model that cannot be loaded, run or explained as asked.</summary>
public sealed class UnsupportedModelException(string message) : ClientInputException(message);
