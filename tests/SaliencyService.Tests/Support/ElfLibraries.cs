namespace SaliencyService.Tests.Support;

/// <summary>The shared libraries an ELF64 library names as needed (its DT_NEEDED entries), read from its section headers.</summary>
public static class ElfLibraries
{
    private const uint DynamicSection = 6; // SHT_DYNAMIC
    private const long NeededEntry = 1; // DT_NEEDED

    public static List<string> Needed(string path)
    {
        using var file = new BinaryReader(File.OpenRead(path));
        var header = Read(file, 0, 64);
        if (header[0] != 0x7f || header[1] != (byte)'E' || header[4] != 2) throw new InvalidDataException($"{path} is not an ELF64 file");
        var sectionsAt = BitConverter.ToInt64(header, 0x28);
        var (size, count) = (BitConverter.ToUInt16(header, 0x3A), BitConverter.ToUInt16(header, 0x3C));
        var sections = Read(file, sectionsAt, size * count);
        for (var s = 0; s < count; s++)
        {
            if (BitConverter.ToUInt32(sections, s * size + 4) != DynamicSection) continue;
            var dynamic = Read(file, BitConverter.ToInt64(sections, s * size + 0x18), (int)BitConverter.ToInt64(sections, s * size + 0x20));
            var link = (int)BitConverter.ToUInt32(sections, s * size + 0x28); // the section of its strings
            var strings = Read(file, BitConverter.ToInt64(sections, link * size + 0x18), (int)BitConverter.ToInt64(sections, link * size + 0x20));
            var names = new List<string>();
            for (var e = 0; e + 16 <= dynamic.Length; e += 16)
            {
                if (BitConverter.ToInt64(dynamic, e) != NeededEntry) continue;
                var start = (int)BitConverter.ToInt64(dynamic, e + 8);
                names.Add(System.Text.Encoding.ASCII.GetString(strings, start, Array.IndexOf(strings, (byte)0, start) - start));
            }
            return names;
        }
        return [];
    }

    private static byte[] Read(BinaryReader file, long offset, int count)
    {
        file.BaseStream.Position = offset;
        var bytes = file.ReadBytes(count);
        return bytes.Length == count ? bytes : throw new InvalidDataException("the ELF file ends inside a header");
    }
}
