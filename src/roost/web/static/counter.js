/* Roost: post length counted exactly as the server counts it (roost/domain/content.py,
 * count_characters): every link counts 23 characters, a mention @user@domain counts as @user,
 * and characters are Unicode code points (as Python's len), not UTF-16 units.
 *
 * The regular expression is content.py's _TOKENS, translated: Python's \w is [\p{L}\p{N}_], its
 * \d is \p{Nd}, its \s is the explicit list below, and its re.IGNORECASE on [a-z] also matches
 * U+0130, U+0131, U+017F and U+212A, and on "s" U+017F, which is spelt out here instead of
 * using JavaScript's i flag (whose case folding differs). tests/e2e/test_counter.py checks
 * that both agree, in a real browser, character class by character class and on tricky text.
 */
(function (root) {
  "use strict";

  var URL_LENGTH = 23;
  var W = "\\p{L}\\p{N}_";
  var S = "\\t\\n\\v\\f\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f" +
          "\\u205f\\u3000";
  var NAME = "a-zA-Z0-9_\\u0130\\u0131\\u017f\\u212a";
  var url = "[hH][tT][tT][pP][sS\\u017f]?://[^" + S + "<>\"'`]+[^" + S + "<>\"'`.,;:!?)\\]}]";
  var mention = "(?<![" + W + "/\\\\@])@(?<uname>[" + NAME + "]+(?:[" + NAME + ".\\-]+[" +
                NAME + "])?)(?:@(?<udomain>[" + W + ".\\-]+[" + W + "]))?";
  var hashtag = "(?<![" + W + "/&#)])#(?<tagname>[" + W + "]{0,100}[\\p{L}\\p{Nl}\\p{No}_][" +
                W + "]{0,100})";
  var source = "(?<url>" + url + ")|(?<mention>" + mention + ")|(?<tag>" + hashtag + ")";
  var tokens = null;
  try {
    tokens = new RegExp(source, "gu");
  } catch (e) {
    tokens = null; // a browser without lookbehind or \p{}: count code points only
  }

  function codePoints(text) {
    var n = 0;
    for (var i = 0; i < text.length; i++) {
      var c = text.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
        var d = text.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) i++;
      }
      n++;
    }
    return n;
  }

  function countCharacters(text) {
    var length = codePoints(text);
    if (!tokens) return length;
    tokens.lastIndex = 0;
    var match;
    while ((match = tokens.exec(text)) !== null) {
      var g = match.groups;
      if (g.url !== undefined) {
        length += URL_LENGTH - codePoints(g.url);
      } else if (g.mention !== undefined && g.udomain !== undefined) {
        length -= codePoints(g.udomain) + 1;
      }
      if (match[0].length === 0) tokens.lastIndex++;
    }
    return length;
  }

  root.RoostCount = { countCharacters: countCharacters, URL_LENGTH: URL_LENGTH, source: source };
})(window);
