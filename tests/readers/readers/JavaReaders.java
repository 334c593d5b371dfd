// JavaReaders.java: the JVM pipeline readers (Debian's Jackson 2.14, Gson 2.10).
//
// usage: java -cp ... JavaReaders IN.jsonl OUT.jsonl READER...
// (format: see py_readers.py). Readers:
//   java-readline-jackson  BufferedReader.readLine (LF, CR, CRLF) + ObjectMapper.readTree
//   java-readline-gson     readLine + JsonParser.parseString (Gson's lenient default)
//   java-jackson-ci        readLine + a POJO under MapperFeature.ACCEPT_CASE_INSENSITIVE_PROPERTIES
//   java-equalsignorecase  readLine + readTree, keys found with String.equalsIgnoreCase
//   java-hadoop-linereader Hadoop LineReader's splitting (LF, CR or CRLF end a line),
//                          every body read as lines whatever its type, malformed lines
//                          kept (Spark's PERMISSIVE mode), each line read by Jackson
// Ids: Jackson asText(), Gson getAsString(). Run under -Duser.language=tr
// -Duser.country=TR for the Turkish-locale variants.
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MapperFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

public class JavaReaders {
  static final ObjectMapper PLAIN = new ObjectMapper();
  static final ObjectMapper CI = JsonMapper.builder()
      .enable(MapperFeature.ACCEPT_CASE_INSENSITIVE_PROPERTIES)
      .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
      .build();

  public static class Mention {
    @JsonProperty("id") public JsonNode id;
  }

  public static class RecA {
    @JsonProperty("author_id") public JsonNode authorId;
  }

  public static class RecAM {
    @JsonProperty("author_id") public JsonNode authorId;
    @JsonProperty("mentions") public List<Mention> mentions;
  }

  static String q(String s) {
    if (s == null) return "null";
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      if (c == '"' || c == '\\') b.append('\\').append(c);
      else if (c < 0x20 || c > 0x7e) b.append(String.format("\\u%04x", (int) c));
      else b.append(c);
    }
    return b.append('"').toString();
  }

  static String cut(Throwable e) {
    String m = e.getClass().getSimpleName() + ": " + e.getMessage();
    return m.length() > 80 ? m.substring(0, 80) : m;
  }

  // ---- rendering
  static String jr(JsonNode n) {
    if (n == null || !(n.isTextual() || n.isNumber())) return null;
    return n.asText();
  }

  static String gr(JsonElement e) {
    if (e == null || !e.isJsonPrimitive()) return null;
    JsonPrimitive p = e.getAsJsonPrimitive();
    if (!(p.isString() || p.isNumber())) return null;
    return p.getAsString();
  }

  // ---- subjects per reader; returns the JSON text of the "s" list
  static String list(List<String> s) {
    StringBuilder b = new StringBuilder("[");
    for (int i = 0; i < s.size(); i++) {
      if (i > 0) b.append(',');
      b.append(q(s.get(i)));
    }
    return b.append(']').toString();
  }

  static List<String> jackson(JsonNode v, String loc) {
    List<String> out = new ArrayList<>();
    if (v == null || !v.isObject()) return null;
    out.add(v.has("author_id") ? jr(v.get("author_id")) : null);
    if (loc.equals("am") && v.get("mentions") != null && v.get("mentions").isArray())
      for (JsonNode e : v.get("mentions"))
        if (e.isObject() && e.has("id")) out.add(jr(e.get("id")));
    return out;
  }

  static List<String> gson(JsonElement v, String loc) {
    List<String> out = new ArrayList<>();
    if (v == null || !v.isJsonObject()) return null;
    JsonObject o = v.getAsJsonObject();
    out.add(o.has("author_id") ? gr(o.get("author_id")) : null);
    if (loc.equals("am") && o.has("mentions") && o.get("mentions").isJsonArray())
      for (JsonElement e : o.getAsJsonArray("mentions"))
        if (e.isJsonObject() && e.getAsJsonObject().has("id"))
          out.add(gr(e.getAsJsonObject().get("id")));
    return out;
  }

  static JsonNode eicGet(JsonNode o, String key) {
    JsonNode found = null;
    Iterator<Map.Entry<String, JsonNode>> it = o.fields();
    while (it.hasNext()) {
      Map.Entry<String, JsonNode> e = it.next();
      if (e.getKey().equalsIgnoreCase(key)) found = e.getValue(); // the last wins
    }
    return found;
  }

  static List<String> eic(JsonNode v, String loc) {
    List<String> out = new ArrayList<>();
    if (v == null || !v.isObject()) return null;
    JsonNode a = eicGet(v, "author_id");
    out.add(a == null ? null : jr(a));
    JsonNode m = eicGet(v, "mentions");
    if (loc.equals("am") && m != null && m.isArray())
      for (JsonNode e : m)
        if (e.isObject()) {
          JsonNode id = eicGet(e, "id");
          if (id != null) out.add(jr(id));
        }
    return out;
  }

  static List<String> ci(String text, String loc) throws Exception {
    List<String> out = new ArrayList<>();
    if (loc.equals("am")) {
      RecAM r = CI.readValue(text, RecAM.class);
      if (r == null) return null;
      out.add(jr(r.authorId));
      if (r.mentions != null)
        for (Mention m : r.mentions) if (m != null && m.id != null) out.add(jr(m.id));
    } else {
      RecA r = CI.readValue(text, RecA.class);
      if (r == null) return null;
      out.add(jr(r.authorId));
    }
    return out;
  }

  // ---- one record, by reader
  static List<String> one(String reader, String text, String loc) throws Exception {
    switch (reader) {
      case "java-readline-jackson":
      case "java-hadoop-linereader":
        return jackson(PLAIN.readTree(text), loc);
      case "java-readline-gson":
        return gson(JsonParser.parseString(text), loc);
      case "java-jackson-ci":
        return ci(text, loc);
      case "java-equalsignorecase":
        return eic(PLAIN.readTree(text), loc);
      default:
        throw new IllegalArgumentException(reader);
    }
  }

  // Elements of a top-level array, as text each reader would map on its own.
  static List<String> docRecords(String reader, String text) throws Exception {
    List<String> out = new ArrayList<>();
    if (reader.equals("java-readline-gson")) {
      JsonElement v = JsonParser.parseString(text);
      if (v.isJsonArray()) for (JsonElement e : v.getAsJsonArray()) out.add(e.toString());
      else out.add(text);
      return out;
    }
    JsonNode v = PLAIN.readTree(text);
    if (v != null && v.isArray()) for (JsonNode e : v) out.add(e.toString());
    else out.add(text);
    return out;
  }

  static List<String> readLines(byte[] body) throws Exception {
    BufferedReader r = new BufferedReader(
        new InputStreamReader(new ByteArrayInputStream(body), StandardCharsets.UTF_8));
    List<String> out = new ArrayList<>();
    for (String l; (l = r.readLine()) != null;) out.add(l);
    return out;
  }

  // Hadoop org.apache.hadoop.util.LineReader (default delimiters): a line
  // ends at LF, at CR, or at CRLF; the terminator is not part of the line.
  static List<String> hadoopLines(byte[] b) {
    List<String> out = new ArrayList<>();
    int start = 0, i = 0;
    while (i < b.length) {
      if (b[i] == '\n' || b[i] == '\r') {
        out.add(new String(b, start, i - start, StandardCharsets.UTF_8));
        if (b[i] == '\r' && i + 1 < b.length && b[i + 1] == '\n') i++;
        start = i + 1;
      }
      i++;
    }
    if (start < b.length) out.add(new String(b, start, b.length - start, StandardCharsets.UTF_8));
    return out;
  }

  public static void main(String[] args) throws Exception {
    List<String> items = Files.readAllLines(Paths.get(args[0]), StandardCharsets.UTF_8);
    String suffix = System.getProperty("readers.suffix", "");
    try (PrintWriter o = new PrintWriter(Files.newBufferedWriter(Paths.get(args[1]), StandardCharsets.UTF_8))) {
      for (String line : items) {
        if (line.isEmpty()) continue;
        JsonNode it = PLAIN.readTree(line);
        String id = it.get("id").asText(), mode = it.get("mode").asText(), loc = it.get("loc").asText();
        byte[] body = Base64.getDecoder().decode(it.get("b64").asText());
        for (int k = 2; k < args.length; k++) {
          String reader = args[k];
          StringBuilder recs = new StringBuilder("[");
          String err = null;
          try {
            List<String> texts;
            boolean lines = mode.equals("lines") || reader.equals("java-hadoop-linereader");
            if (reader.equals("java-hadoop-linereader")) texts = hadoopLines(body);
            else if (lines) texts = readLines(body);
            else texts = docRecords(reader, new String(body, StandardCharsets.UTF_8));
            int n = 0;
            for (String t : texts) {
              if (lines && t.trim().isEmpty()) continue;
              if (n++ > 0) recs.append(',');
              try {
                List<String> sl = one(reader, t, loc);
                if (sl == null) recs.append("{\"n\":1}"); // not an object
                else recs.append("{\"s\":").append(list(sl)).append('}');
              } catch (Exception e) {
                if (!lines) throw e;
                recs.append("{\"err\":").append(q(cut(e))).append('}');
              }
            }
          } catch (Exception e) {
            recs = new StringBuilder("[");
            err = cut(e);
          }
          recs.append(']');
          o.println("{\"id\":" + q(id) + ",\"r\":" + q(reader + suffix) + ",\"recs\":" + recs
              + ",\"err\":" + q(err) + "}");
        }
      }
    }
  }
}
