// Generic relay for the real-time journeys outbound custom API (see rtj-relay/README.md and
// docs/real-time-journeys.md). Reads the custom API's `payload` string, POSTs it unchanged to the Function app's
// /api/rtj/outbound, and writes the answer body into the `response` output. All channel logic lives in the Python
// app: this class never changes.
//
// Configuration: Dataverse environment variables, read by their EXACT schema name (a custom API's main operation has
// no step, hence no step configuration). The publisher prefix is the text before the first '_' of the custom API's
// unique name (context.MessageName, e.g. cr123_ChannelOutbound → cr123):
//   <prefix>_ChannelRelayUrl     (Text, required)  https://<app>.azurewebsites.net/api/rtj/outbound
//   <prefix>_ChannelRelayScope   (Text)            entra mode: a token from IManagedIdentityService for this scope
//                                                  (e.g. api://<app id>/.default) → Authorization: Bearer <token>
//   <prefix>_ChannelRelaySecret  (Text)            secret mode: X-Channel-Secret: <value> (the app's RTJ_OUTBOUND_SECRET)
// Exactly one of Scope / Secret has a value (current value, else default value). Key Vault "Secret" variables are
// refused: plug-ins cannot read them.
//
// Every request also carries X-Organization-Id: the execution context's OrganizationId as a lower-case GUID
// ("D" format), in both modes; with MULTI_ORG=true the app routes the request to that org's registration. A context
// without one (Guid.Empty) is refused before anything is read or sent: the app could not route it.
//
// Every failure surfaces as InvalidPluginExecutionException with a clear message, and one deadline (15 s) bounds the
// whole call (variable lookups, token, connect, send, read) inside Journeys' 20-second limit.
using System;
using System.Diagnostics;
using System.IO;
using System.Net;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Xrm.Sdk;
using Microsoft.Xrm.Sdk.Query;

namespace ChannelRelay
{
    public sealed class OutboundRelayPlugin : IPlugin
    {
        public const int DeadlineMilliseconds = 15000; // the whole Execute; Journeys allows 20 s per attempt
        public const string UrlVariable = "_ChannelRelayUrl";
        public const string ScopeVariable = "_ChannelRelayScope";
        public const string SecretVariable = "_ChannelRelaySecret";
        public const string OrganizationHeader = "X-Organization-Id";
        private const int TextType = 100000000; // environmentvariabledefinition.type = String (Text)
        private const int SecretType = 100000005; // = Secret (Azure Key Vault): not readable by plug-ins
        private const int MaxAnswerBytes = 1024 * 1024;

        public void Execute(IServiceProvider serviceProvider)
        {
            var clock = Stopwatch.StartNew();
            if (serviceProvider == null) throw Fail("no service provider.", null);
            var trace = serviceProvider.GetService(typeof(ITracingService)) as ITracingService;
            try
            {
                Relay(serviceProvider, trace, clock);
            }
            catch (InvalidPluginExecutionException ex)
            {
                Trace(trace, "ChannelRelay: failed after {0} ms: {1}", clock.ElapsedMilliseconds, ex.Message);
                throw;
            }
            catch (Exception ex)
            {
                Trace(trace, "ChannelRelay: failed after {0} ms: {1}", clock.ElapsedMilliseconds, ex.GetType().Name);
                throw Fail("unexpected " + ex.GetType().Name + ": " + ex.Message, ex);
            }
        }

        private static void Relay(IServiceProvider serviceProvider, ITracingService trace, Stopwatch clock)
        {
            var context = serviceProvider.GetService(typeof(IPluginExecutionContext)) as IPluginExecutionContext;
            if (context == null) throw Fail("no plug-in execution context.", null);
            if (context.OrganizationId == Guid.Empty)
                throw Fail("the execution context has no organization id (Guid.Empty): the channel app routes each"
                    + " request by its " + OrganizationHeader + " header and could not route this one.", null);
            // Guid "D" format is lower-case hex with hyphens, the form of the app's org registry keys.
            var organizationId = context.OrganizationId.ToString("D");
            var prefix = Prefix(context.MessageName);
            object raw;
            var payload = context.InputParameters.TryGetValue("payload", out raw) ? raw as string : null;
            if (payload == null) throw Fail("input parameter 'payload' is missing or not a string.", null);

            var factory = serviceProvider.GetService(typeof(IOrganizationServiceFactory)) as IOrganizationServiceFactory;
            if (factory == null) throw Fail("no organization service factory.", null);
            var service = factory.CreateOrganizationService(null);
            var urlName = prefix + UrlVariable;
            var scopeName = prefix + ScopeVariable;
            var secretName = prefix + SecretVariable;
            var uri = ParseUrl(ReadVariable(service, urlName), urlName);
            var scope = ReadVariable(service, scopeName);
            var secret = ReadVariable(service, secretName);
            if (string.IsNullOrWhiteSpace(scope) == string.IsNullOrWhiteSpace(secret))
                throw Fail("set exactly one of the environment variables " + scopeName + " (entra: a token scope such"
                    + " as api://<app id>/.default) and " + secretName + " (secret: the app's RTJ_OUTBOUND_SECRET).",
                    null);

            AuthenticationHeaderValue bearer = null;
            if (!string.IsNullOrWhiteSpace(scope))
                bearer = new AuthenticationHeaderValue("Bearer", AcquireToken(serviceProvider, scope.Trim()));
            var remaining = DeadlineMilliseconds - (int)clock.ElapsedMilliseconds;
            Trace(trace, "ChannelRelay: POST {0} ({1} mode, organization {2}, {3} ms left)",
                uri.GetLeftPart(UriPartial.Path), bearer != null ? "entra" : "secret", organizationId, remaining);
            var answer = Post(uri, Encoding.UTF8.GetBytes(payload), organizationId, bearer,
                bearer == null ? secret.Trim() : null, remaining);
            context.OutputParameters["response"] = answer;
            Trace(trace, "ChannelRelay: answered in {0} ms", clock.ElapsedMilliseconds);
        }

        private static string Prefix(string messageName)
        {
            var cut = messageName == null ? -1 : messageName.IndexOf('_');
            if (cut <= 0)
                throw Fail("the custom API name '" + messageName + "' has no publisher prefix (expected"
                    + " <prefix>_<Name>, e.g. cr123_ChannelOutbound).", null);
            return messageName.Substring(0, cut);
        }

        // Exact schema name (ConditionOperator.Equal): never EndsWith/Like, where Dataverse reads '_' as a wildcard.
        private static string ReadVariable(IOrganizationService service, string schemaName)
        {
            var query = new QueryExpression("environmentvariabledefinition")
            {
                ColumnSet = new ColumnSet("schemaname", "defaultvalue", "type"),
            };
            query.Criteria.AddCondition("schemaname", ConditionOperator.Equal, schemaName);
            var values = query.AddLink("environmentvariablevalue", "environmentvariabledefinitionid",
                "environmentvariabledefinitionid", JoinOperator.LeftOuter);
            values.Columns = new ColumnSet("value");
            values.EntityAlias = "v";
            var rows = service.RetrieveMultiple(query).Entities;
            if (rows.Count == 0) return null;
            if (rows.Count > 1)
                throw Fail("environment variable " + schemaName + " has " + rows.Count + " value records; keep one.",
                    null);
            var row = rows[0];
            if (!string.Equals(row.GetAttributeValue<string>("schemaname"), schemaName,
                    StringComparison.OrdinalIgnoreCase))
                throw Fail("the lookup of environment variable " + schemaName + " returned another variable.", null);
            var type = row.GetAttributeValue<OptionSetValue>("type");
            if (type != null && type.Value == SecretType)
                throw Fail("environment variable " + schemaName + " is a Secret (Azure Key Vault) variable, which"
                    + " plug-ins cannot read: make it a Text variable (or use entra mode).", null);
            if (type != null && type.Value != TextType)
                throw Fail("environment variable " + schemaName + " must be of type Text.", null);
            var current = row.GetAttributeValue<AliasedValue>("v.value");
            var value = current == null ? null : current.Value as string;
            return string.IsNullOrWhiteSpace(value) ? row.GetAttributeValue<string>("defaultvalue") : value;
        }

        private static Uri ParseUrl(string value, string variable)
        {
            if (string.IsNullOrWhiteSpace(value))
                throw Fail("environment variable " + variable + " is missing or has no value (expected"
                    + " https://<app>.azurewebsites.net/api/rtj/outbound).", null);
            Uri uri;
            var text = value.Trim();
            var shown = text.Length > 200 ? text.Substring(0, 200) + "…" : text;
            if (!Uri.TryCreate(text, UriKind.Absolute, out uri)
                || !(uri.Scheme == Uri.UriSchemeHttps || (uri.Scheme == Uri.UriSchemeHttp && uri.IsLoopback)))
                throw Fail("environment variable " + variable + " is not an https URL: '" + shown + "'.", null);
            return uri;
        }

        private static string AcquireToken(IServiceProvider serviceProvider, string scope)
        {
            var identity = serviceProvider.GetService(typeof(IManagedIdentityService)) as IManagedIdentityService;
            if (identity == null)
                throw Fail("no managed identity service: bind a managed identity record to the ChannelRelay plug-in"
                    + " assembly (see rtj-relay/README.md).", null);
            string token;
            try
            {
                token = identity.AcquireToken(new[] { scope });
            }
            catch (Exception ex)
            {
                throw Fail("could not get a token for scope " + scope + ": " + ex.GetType().Name + ": " + ex.Message,
                    ex);
            }
            if (string.IsNullOrWhiteSpace(token)) throw Fail("the managed identity returned no token.", null);
            return token;
        }

        private sealed class Answer
        {
            public int Status;
            public string Body;
        }

        private static string Post(Uri uri, byte[] body, string organizationId, AuthenticationHeaderValue bearer,
            string secret, int remaining)
        {
            if (remaining <= 0) throw Fail("no time left for the request (deadline " + DeadlineMilliseconds + " ms).",
                null);
            var handler = new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false };
            using (var client = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan })
            using (var cancel = new CancellationTokenSource())
            using (var request = new HttpRequestMessage(HttpMethod.Post, uri))
            {
                request.Content = new ByteArrayContent(body);
                request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse("application/json; charset=utf-8");
                if (bearer != null) request.Headers.Authorization = bearer;
                else request.Headers.TryAddWithoutValidation("X-Channel-Secret", secret);
                request.Headers.TryAddWithoutValidation(OrganizationHeader, organizationId);
                request.Headers.ConnectionClose = true;
                var call = SendAndRead(client, request, cancel.Token);
                Answer answer;
                try
                {
                    // The one deadline: whatever phase the call is in (DNS, connect, send, a slow answer in pieces).
                    if (!call.Wait(remaining))
                    {
                        cancel.Cancel();
                        throw Fail("the channel app did not answer within the " + DeadlineMilliseconds
                            + " ms deadline (" + uri.Host + ").", null);
                    }
                    answer = call.Result;
                }
                catch (AggregateException ex)
                {
                    var inner = ex.Flatten().InnerException ?? ex;
                    throw Fail("the request to " + uri.Host + " failed: " + Describe(inner), inner);
                }
                if (answer.Status != 200)
                    throw Fail("the channel app answered HTTP " + answer.Status + " " + Snippet(answer.Body)
                        + " (409: the same request is in progress; 503: provider or configuration unavailable;"
                        + " 401/403: authentication).", null);
                return answer.Body;
            }
        }

        private static async Task<Answer> SendAndRead(HttpClient client, HttpRequestMessage request,
            CancellationToken cancel)
        {
            using (var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel)
                .ConfigureAwait(false))
            using (var stream = await response.Content.ReadAsStreamAsync().ConfigureAwait(false))
            using (var buffer = new MemoryStream())
            {
                var chunk = new byte[8192];
                int read;
                while ((read = await stream.ReadAsync(chunk, 0, chunk.Length, cancel).ConfigureAwait(false)) > 0)
                {
                    buffer.Write(chunk, 0, read);
                    if (buffer.Length > MaxAnswerBytes) throw new InvalidDataException("answer larger than 1 MB");
                }
                return new Answer { Status = (int)response.StatusCode, Body = Encoding.UTF8.GetString(buffer.ToArray()) };
            }
        }

        private static string Describe(Exception ex)
        {
            var web = ex as WebException ?? ex.InnerException as WebException;
            if (web != null) return web.Status + " (" + web.Message + ")";
            if (ex is TaskCanceledException || ex is OperationCanceledException) return "cancelled at the deadline";
            var text = ex.GetType().Name + ": " + ex.Message;
            return ex.InnerException == null ? text : text + " → " + Describe(ex.InnerException);
        }

        private static string Snippet(string body)
        {
            if (string.IsNullOrEmpty(body)) return "(empty body)";
            var flat = body.Replace('\r', ' ').Replace('\n', ' ');
            return flat.Length > 200 ? flat.Substring(0, 200) + "…" : flat;
        }

        private static void Trace(ITracingService trace, string format, params object[] args)
        {
            if (trace != null) trace.Trace(format, args);
        }

        private static InvalidPluginExecutionException Fail(string message, Exception inner)
        {
            return inner == null
                ? new InvalidPluginExecutionException("ChannelRelay: " + message)
                : new InvalidPluginExecutionException("ChannelRelay: " + message, inner);
        }
    }
}
