/// `text` cut to at most `maxLines` lines and about `maxCharacters` characters, for printing an
/// error whose parts come from a file (names, settings, lists of differences): a crafted file
/// must not be able to flood the terminal.
///
/// Text within both limits is returned unchanged. Otherwise the first lines are kept and the
/// result says what was left out: a line cut short ends with ` … (N more characters)`, and
/// lines left out whole are counted on a last line `… (N more lines)`. The result has at most
/// `maxLines` lines and, for limits of 100 characters or more, at most `maxCharacters` characters.
public func boundedMessage(_ text: String, maxLines: Int = 40, maxCharacters: Int = 4000) -> String {
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    guard lines.count > maxLines || text.count > maxCharacters else { return text }
    // Room for the notes on what was left out (each under 50 characters).
    let budget = max(maxCharacters - 100, 1), lineBudget = max(maxLines - 1, 1)
    var kept: [String] = []
    var used = 0
    for line in lines.prefix(lineBudget) {
        let room = budget - used
        if line.count <= room {
            kept.append(String(line))
            used += line.count + 1
            continue
        }
        // The line that does not fit: its start, and how much of it is left out.
        let shown = max(room, 0)
        kept.append(String(line.prefix(shown)) + " … (\(line.count - shown) more characters)")
        break
    }
    let omitted = lines.count - kept.count
    if omitted > 0 { kept.append("… (\(omitted) more line\(omitted == 1 ? "" : "s"))") }
    return kept.joined(separator: "\n")
}
