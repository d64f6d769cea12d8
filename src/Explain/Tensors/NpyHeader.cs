using System.Globalization;

namespace SaliencyService.Explain.Tensors;

/// <summary>
/// The dict of a <c>.npy</c> header, read as NumPy reads it (<c>ast.literal_eval</c>, then exactly
/// the keys <c>descr</c>, <c>fortran_order</c> and <c>shape</c>, the shape a tuple of integers):
/// a header NumPy refuses is refused here too, with what is wrong in the message.
/// </summary>
/// <param name="Descr">The dtype as NumPy spells it (<c>'&lt;f4'</c>); null for a structured dtype (a list).</param>
/// <param name="FortranOrder">Whether the data is column-major.</param>
/// <param name="Shape">The array's shape.</param>
internal sealed record NpyHeader(string? Descr, bool FortranOrder, long[] Shape)
{
    /// <summary>Parses the header's text: the dict, then only white space.</summary>
    public static NpyHeader Parse(string text)
    {
        var reader = new Reader(text);
        string? descr = null;
        bool? fortran = null;
        long[]? shape = null;
        var hasDescr = false;
        reader.Expect('{');
        while (!reader.TakeIf('}'))
        {
            var key = reader.String();
            reader.Expect(':');
            switch (key)
            {
                case "descr" when !hasDescr:
                    hasDescr = true;
                    descr = reader.SkipList() ? null : reader.String(); // a list: a structured dtype
                    break;
                case "fortran_order" when fortran is null:
                    fortran = reader.Boolean();
                    break;
                case "shape" when shape is null:
                    shape = reader.IntegerTuple();
                    break;
                default:
                    throw Malformed($"its key '{key}' is not one of 'descr', 'fortran_order', 'shape', or comes twice");
            }
            if (!reader.TakeIf(',')) { reader.Expect('}'); break; }
        }
        reader.ExpectEnd();
        if (!hasDescr || fortran is null || shape is null)
            throw Malformed("it needs the keys 'descr', 'fortran_order' and 'shape'");
        return new NpyHeader(descr, fortran.Value, shape);
    }

    private static InvalidArgumentException Malformed(string why) => new($"The .npy header is malformed: {why}.");

    /// <summary>A cursor over the text that skips Python's white space before each token.</summary>
    private sealed class Reader(string text)
    {
        private int _at;

        private char Next()
        {
            while (_at < text.Length && text[_at] is ' ' or '\t' or '\n' or '\r') _at++;
            return _at < text.Length ? text[_at] : '\0';
        }

        public bool TakeIf(char c)
        {
            if (Next() != c) return false;
            _at++;
            return true;
        }

        public void Expect(char c)
        {
            if (!TakeIf(c)) throw Malformed($"'{c}' expected at character {_at}");
        }

        public void ExpectEnd()
        {
            if (Next() != '\0') throw Malformed($"text after the dict at character {_at}");
        }

        /// <summary>A quoted string without escapes, in single or double quotes.</summary>
        public string String()
        {
            var quote = Next();
            if (quote is not ('\'' or '"')) throw Malformed($"a quoted string expected at character {_at}");
            var end = text.IndexOf(quote, _at + 1);
            if (end < 0 || text.IndexOf('\\', _at + 1, end - _at - 1) >= 0) throw Malformed($"an unterminated or escaped string at character {_at}");
            var value = text[(_at + 1)..end];
            _at = end + 1;
            return value;
        }

        public bool Boolean()
        {
            foreach (var (word, value) in new[] { ("True", true), ("False", false) })
            {
                Next();
                if (string.CompareOrdinal(text, _at, word, 0, word.Length) == 0 && !IsWordCharacter(_at + word.Length))
                {
                    _at += word.Length;
                    return value;
                }
            }
            throw Malformed($"True or False expected at character {_at}");
        }

        /// <summary>A tuple of non-negative integers: <c>()</c>, <c>(3,)</c>, <c>(1, 3, 224, 224)</c> (Python 2's <c>3L</c> too).</summary>
        public long[] IntegerTuple()
        {
            Expect('(');
            var values = new List<long>();
            var trailingComma = false;
            while (!TakeIf(')'))
            {
                Next();
                var start = _at;
                while (_at < text.Length && char.IsAsciiDigit(text[_at])) _at++;
                if (!long.TryParse(text.AsSpan(start, _at - start), NumberStyles.None, CultureInfo.InvariantCulture, out var value))
                    throw Malformed($"the shape holds something other than a non-negative integer at character {start}");
                if (_at < text.Length && text[_at] == 'L') _at++;
                values.Add(value);
                trailingComma = TakeIf(',');
                if (!trailingComma) { Expect(')'); break; }
            }
            // Python reads "(5)" as the number 5, which NumPy refuses as a shape.
            if (values.Count == 1 && !trailingComma) throw Malformed("a shape of one dimension is written '(n,)'");
            return [.. values];
        }

        /// <summary>Skips a list (a structured dtype's fields), nested brackets and strings included; false where none starts here.</summary>
        public bool SkipList()
        {
            if (Next() != '[') return false;
            var depth = 0;
            for (; _at < text.Length; _at++)
            {
                var c = text[_at];
                if (c is '\'' or '"') { String(); _at--; }
                else if (c is '[' or '(') depth++;
                else if (c is ']' or ')' && --depth == 0) { _at++; return true; }
            }
            throw Malformed("an unterminated list");
        }

        private bool IsWordCharacter(int index) => index < text.Length && (char.IsAsciiLetterOrDigit(text[index]) || text[index] == '_');
    }
}
