using System.Collections;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace SaliencyService.Api.OpenInference;

/// <summary>
/// A protobuf message as Triton's REST endpoints write their statistics: the proto's field names,
/// every field (zeros too), and 64-bit integers as JSON numbers, where protobuf's own JSON writes
/// them as strings (which clients summing counts and nanoseconds do not expect).
/// </summary>
public static class TritonJson
{
    public static JsonObject Of(IMessage message)
    {
        var json = new JsonObject();
        foreach (var field in message.Descriptor.Fields.InFieldNumberOrder())
            if (Value(field.Accessor.GetValue(message)) is var value && (value is not null || field.FieldType != FieldType.Message))
                json[field.Name] = value;
        return json;
    }

    private static JsonNode? Value(object? value) => value switch
    {
        null => null,
        IMessage message => Of(message),
        string or bool or int or long or uint or ulong or float or double => JsonValue.Create(value),
        IList repeated => new JsonArray(repeated.Cast<object?>().Select(Value).ToArray()),
        _ => throw new NotSupportedException($"A field of type {value.GetType().Name} is not written as Triton's JSON."),
    };
}
