// A dependency-free Java 17 client for etax-authz, the kind a Java tax system
// copies into its code base: java.net.http for HTTP, a small JSON reader and
// writer, and one exception type carrying the service's error shape
// {"error":{"code","message","field","retry_after_secs"}}.
//
//   javac -d out examples/java/EtaxClient.java
//   java -cp out EtaxClient http://127.0.0.1:8180 [API_KEY]
//
// main() walks a clerk's login (enterprise password, staff choice, SMS code),
// asks about business functions with the session, and shows how each error
// shape is handled. It exits non-zero if the service answers otherwise than
// the demo bureau (serve --demo) should, so CI runs it as a test.

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

public final class EtaxClient {

    /** An error answer of the service: HTTP status and its JSON error. */
    public static final class EtaxException extends Exception {
        private static final long serialVersionUID = 1L;
        public final int status;
        /** Machine-readable, e.g. {@code invalid_credentials}, {@code account_locked}. */
        public final String code;
        /** The request field that was wrong, for 400s; otherwise null. */
        public final String field;
        /** For 423 and 429: seconds to wait before trying again. */
        public final Long retryAfterSecs;

        EtaxException(int status, String code, String message, String field, Long retryAfterSecs) {
            super(status + " " + code + ": " + message);
            this.status = status;
            this.code = code;
            this.field = field;
            this.retryAfterSecs = retryAfterSecs;
        }

        /** Worth retrying later (lockout, rate limit, service busy) rather than a wrong request. */
        public boolean retryable() {
            return status == 423 || status == 429 || status >= 500;
        }
    }

    /** The answer to one authorization question. */
    public record Decision(boolean allowed, List<Object> reasons, String decisionId) {}

    private final HttpClient http;
    private final URI base;
    private final Optional<String> apiKey;

    public EtaxClient(String baseUrl, Optional<String> apiKey) {
        this.http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
        this.base = URI.create(baseUrl.endsWith("/") ? baseUrl : baseUrl + "/");
        this.apiKey = apiKey;
    }

    /** POSTs a JSON body and answers the JSON object, or throws the service's error. */
    @SuppressWarnings("unchecked")
    public Map<String, Object> post(String path, Map<String, Object> body)
            throws EtaxException, IOException, InterruptedException {
        HttpRequest.Builder req = HttpRequest.newBuilder(base.resolve(path.substring(1)))
                .timeout(Duration.ofSeconds(10))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(Json.write(body), StandardCharsets.UTF_8));
        apiKey.ifPresent(k -> req.header("Authorization", "Bearer " + k));
        HttpResponse<String> resp = http.send(req.build(), HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
        Object parsed = Json.read(resp.body());
        if (resp.statusCode() / 100 != 2) {
            Map<String, Object> err = (Map<String, Object>) ((Map<String, Object>) parsed).get("error");
            Object retry = err.get("retry_after_secs");
            throw new EtaxException(resp.statusCode(), (String) err.get("code"), (String) err.get("message"),
                    (String) err.get("field"), retry == null ? null : ((Number) retry).longValue());
        }
        return (Map<String, Object>) parsed;
    }

    // ---- Login (R2): enterprise password, pick a staff member, SMS code ----

    /** Step 1: the enterprise account. Answers the staff selection. */
    public Map<String, Object> enterpriseLogin(String account, String password)
            throws EtaxException, IOException, InterruptedException {
        return post("/v1/login/enterprise", Map.of("account", account, "password", password));
    }

    /** Step 2: an SMS code for the chosen staff member, for the calling system to deliver. */
    public Map<String, Object> sendCode(String flow, String staffId)
            throws EtaxException, IOException, InterruptedException {
        return post("/v1/login/enterprise/code", Map.of("flow", flow, "staff", staffId));
    }

    /** Step 3: the code the user typed. Answers the session grant. */
    public Map<String, Object> completeWithCode(String flow, String staffId, String challenge, String code)
            throws EtaxException, IOException, InterruptedException {
        return post("/v1/login/enterprise/complete",
                Map.of("flow", flow, "staff", staffId, "challenge", challenge, "code", code));
    }

    public void logout(String session) throws EtaxException, IOException, InterruptedException {
        post("/v1/logout", Map.of("session", session));
    }

    // ---- Authorization ----

    /** May the session's user use this business function (业务功能)? */
    @SuppressWarnings("unchecked")
    public Decision mayUseFunction(String session, String function)
            throws EtaxException, IOException, InterruptedException {
        Map<String, Object> r = post("/v1/authorize", Map.of(
                "session", session,
                "action", "Action::\"useFunction\"",
                "resource", "Function::\"" + function + "\""));
        return new Decision("allow".equals(r.get("decision")), (List<Object>) r.get("reasons"),
                (String) r.get("decision_id"));
    }

    // ---- The demo walk ----

    @SuppressWarnings("unchecked")
    public static void main(String[] args) throws Exception {
        String baseUrl = args.length > 0 ? args[0] : "http://127.0.0.1:8180";
        EtaxClient client = new EtaxClient(baseUrl, args.length > 1 ? Optional.of(args[1]) : Optional.empty());
        String enterprise = "91210102MA0TAX001F";

        // A wrong password: 401 invalid_credentials, the same as for an unknown account.
        try {
            client.enterpriseLogin(enterprise, "Wrong@2026x");
            fail("a wrong password logged in");
        } catch (EtaxException e) {
            expect(e.status == 401 && e.code.equals("invalid_credentials"), "wrong password: " + e.getMessage());
            System.out.println("wrong password      -> " + e.code);
        }

        // A malformed request: 400 naming the field.
        try {
            client.enterpriseLogin("not-a-credit-code", "Etax@2026");
            fail("a malformed account was accepted");
        } catch (EtaxException e) {
            expect(e.status == 400 && "account".equals(e.field), "malformed account: " + e.getMessage());
            System.out.println("malformed account   -> " + e.code + " (field " + e.field + ")");
        }

        // The clerk 张伟 (shown masked as *伟) logs in by SMS.
        Map<String, Object> selection = client.enterpriseLogin(enterprise, "Etax@2026");
        String flow = (String) selection.get("flow");
        Map<String, Object> clerk = null;
        for (Object o : (List<Object>) selection.get("staff")) {
            Map<String, Object> s = (Map<String, Object>) o;
            if ("tax_clerk".equals(s.get("identity_type")) && ((List<Object>) s.get("methods")).contains("sms")) {
                clerk = s;
                break;
            }
        }
        expect(clerk != null, "no tax clerk with SMS login in " + selection);
        String staffId = (String) clerk.get("staff_id");
        Map<String, Object> issued = client.sendCode(flow, staffId);
        // In production the calling system sends issued.code by SMS to
        // destination.phone and the user types it back; it is never shown on screen.
        Map<String, Object> grant = client.completeWithCode(flow, staffId,
                (String) issued.get("challenge"), (String) issued.get("code"));
        String session = (String) grant.get("session");
        System.out.println("logged in as        -> " + grant.get("principal") + ", obligations " + grant.get("obligations"));

        // The clerk's permission identity ("filing") grants VAT filing, not invoicing.
        Decision filing = client.mayUseFunction(session, "vat_filing");
        expect(filing.allowed(), "vat_filing should be allowed: " + filing);
        System.out.println("vat_filing          -> allow " + filing.reasons());
        Decision invoicing = client.mayUseFunction(session, "invoice_issue");
        expect(!invoicing.allowed(), "invoice_issue should be denied: " + invoicing);
        System.out.println("invoice_issue       -> deny " + invoicing.reasons());

        // After logout the session is refused: 401 session_invalid.
        client.logout(session);
        try {
            client.mayUseFunction(session, "vat_filing");
            fail("a logged-out session was accepted");
        } catch (EtaxException e) {
            expect(e.status == 401 && e.code.equals("session_invalid"), "after logout: " + e.getMessage());
            System.out.println("after logout        -> " + e.code);
        }

        // Repeated wrong passwords lock the account: 423 with a wait to honour.
        String other = "91210200MA0DAL003B";
        EtaxException last = null;
        for (int i = 0; i < 6; i++) {
            try {
                client.enterpriseLogin(other, "Wrong@2026x");
            } catch (EtaxException e) {
                last = e;
            }
        }
        expect(last != null && last.status == 423 && last.retryable() && last.retryAfterSecs != null,
                "no lock after six failures: " + last);
        System.out.println("six failures        -> " + last.code + ", retry after " + last.retryAfterSecs + " s");
        System.out.println("ok");
    }

    private static void expect(boolean ok, String what) {
        if (!ok) {
            fail(what);
        }
    }

    private static void fail(String what) {
        System.err.println("FAILED: " + what);
        System.exit(1);
    }

    /** Just enough JSON for this API: objects, arrays, strings, numbers, booleans, null. */
    static final class Json {
        private final String s;
        private int i;

        private Json(String s) {
            this.s = s;
        }

        static Object read(String text) {
            Json p = new Json(text);
            Object v = p.value();
            p.space();
            if (p.i != p.s.length()) {
                throw new IllegalArgumentException("trailing characters at " + p.i);
            }
            return v;
        }

        static String write(Object v) {
            StringBuilder b = new StringBuilder();
            write(b, v);
            return b.toString();
        }

        private static void write(StringBuilder b, Object v) {
            if (v == null) {
                b.append("null");
            } else if (v instanceof String str) {
                b.append('"');
                for (char c : str.toCharArray()) {
                    switch (c) {
                        case '"' -> b.append("\\\"");
                        case '\\' -> b.append("\\\\");
                        case '\n' -> b.append("\\n");
                        case '\r' -> b.append("\\r");
                        case '\t' -> b.append("\\t");
                        default -> {
                            if (c < 0x20) {
                                b.append(String.format("\\u%04x", (int) c));
                            } else {
                                b.append(c);
                            }
                        }
                    }
                }
                b.append('"');
            } else if (v instanceof Map<?, ?> m) {
                b.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    if (!first) {
                        b.append(',');
                    }
                    first = false;
                    write(b, e.getKey().toString());
                    b.append(':');
                    write(b, e.getValue());
                }
                b.append('}');
            } else if (v instanceof List<?> l) {
                b.append('[');
                for (int k = 0; k < l.size(); k++) {
                    if (k > 0) {
                        b.append(',');
                    }
                    write(b, l.get(k));
                }
                b.append(']');
            } else {
                b.append(v); // Number, Boolean
            }
        }

        private void space() {
            while (i < s.length() && Character.isWhitespace(s.charAt(i))) {
                i++;
            }
        }

        private Object value() {
            space();
            if (i >= s.length()) {
                throw new IllegalArgumentException("unexpected end of JSON");
            }
            char c = s.charAt(i);
            switch (c) {
                case '{':
                    return object();
                case '[':
                    return array();
                case '"':
                    return string();
                case 't':
                    return literal("true", Boolean.TRUE);
                case 'f':
                    return literal("false", Boolean.FALSE);
                case 'n':
                    return literal("null", null);
                default:
                    return number();
            }
        }

        private Object literal(String word, Object v) {
            if (!s.startsWith(word, i)) {
                throw new IllegalArgumentException("bad literal at " + i);
            }
            i += word.length();
            return v;
        }

        private Map<String, Object> object() {
            Map<String, Object> m = new LinkedHashMap<>();
            i++;
            space();
            if (s.charAt(i) == '}') {
                i++;
                return m;
            }
            while (true) {
                space();
                String k = string();
                space();
                expectChar(':');
                m.put(k, value());
                space();
                if (s.charAt(i) == ',') {
                    i++;
                } else {
                    expectChar('}');
                    return m;
                }
            }
        }

        private List<Object> array() {
            List<Object> l = new ArrayList<>();
            i++;
            space();
            if (s.charAt(i) == ']') {
                i++;
                return l;
            }
            while (true) {
                l.add(value());
                space();
                if (s.charAt(i) == ',') {
                    i++;
                } else {
                    expectChar(']');
                    return l;
                }
            }
        }

        private String string() {
            expectChar('"');
            StringBuilder b = new StringBuilder();
            while (true) {
                char c = s.charAt(i++);
                if (c == '"') {
                    return b.toString();
                }
                if (c != '\\') {
                    b.append(c);
                    continue;
                }
                char e = s.charAt(i++);
                switch (e) {
                    case 'n' -> b.append('\n');
                    case 't' -> b.append('\t');
                    case 'r' -> b.append('\r');
                    case 'b' -> b.append('\b');
                    case 'f' -> b.append('\f');
                    case 'u' -> {
                        b.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                        i += 4;
                    }
                    default -> b.append(e); // \" \\ \/
                }
            }
        }

        private Number number() {
            int start = i;
            while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) {
                i++;
            }
            String n = s.substring(start, i);
            if (n.isEmpty()) {
                throw new IllegalArgumentException("unexpected character at " + start);
            }
            return n.contains(".") || n.contains("e") || n.contains("E") ? Double.parseDouble(n) : Long.parseLong(n);
        }

        private void expectChar(char c) {
            if (i >= s.length() || s.charAt(i) != c) {
                throw new IllegalArgumentException("expected '" + c + "' at " + i);
            }
            i++;
        }
    }
}
