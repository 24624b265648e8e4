// Generic relay for the real-time journeys outbound custom API (see docs/real-time-journeys.md).
// Reads the custom API's `payload` string, POSTs it to the Function app's /api/rtj/outbound with the shared
// secret, and writes the answer body into the `response` output. All channel logic lives in the Python app:
// this class never changes.
//
// Configuration: two Dataverse environment variables (a custom API's main operation has no step, hence no
// secure configuration): <prefix>_ChannelRelayUrl (Text: https://<app>.azurewebsites.net/api/rtj/outbound) and
// <prefix>_ChannelRelaySecret (Secret backed by Azure Key Vault, or Text): the app's RTJ_OUTBOUND_SECRET.
using System;
using System.IO;
using System.Linq;
using System.Net;
using System.Text;
using Microsoft.Xrm.Sdk;
using Microsoft.Xrm.Sdk.Query;

namespace ChannelRelay
{
    public sealed class OutboundRelayPlugin : IPlugin
    {
        private const int TimeoutSeconds = 15; // Journeys allows 20 s per attempt: keep a margin.
        private const int SecretType = 100000005; // environmentvariabledefinition.type = Secret

        public void Execute(IServiceProvider serviceProvider)
        {
            var context = (IPluginExecutionContext)serviceProvider.GetService(typeof(IPluginExecutionContext));
            var trace = (ITracingService)serviceProvider.GetService(typeof(ITracingService));
            var factory = (IOrganizationServiceFactory)serviceProvider.GetService(typeof(IOrganizationServiceFactory));
            var service = factory.CreateOrganizationService(null);
            if (!(context.InputParameters.Contains("payload") && context.InputParameters["payload"] is string payload))
                throw new InvalidPluginExecutionException("ChannelRelay: input parameter 'payload' is missing.");

            var url = ReadVariable(service, "_ChannelRelayUrl");
            var secret = ReadVariable(service, "_ChannelRelaySecret");
            var request = (HttpWebRequest)WebRequest.Create(url);
            request.Method = "POST";
            request.ContentType = "application/json; charset=utf-8";
            request.Headers.Add("X-Channel-Secret", secret);
            request.Timeout = TimeoutSeconds * 1000;
            request.ReadWriteTimeout = TimeoutSeconds * 1000;
            request.KeepAlive = false;
            var body = Encoding.UTF8.GetBytes(payload);
            request.ContentLength = body.Length;
            try
            {
                using (var stream = request.GetRequestStream()) stream.Write(body, 0, body.Length);
                using (var response = (HttpWebResponse)request.GetResponse())
                using (var reader = new StreamReader(response.GetResponseStream(), Encoding.UTF8))
                {
                    // 200: the body is the `response` JSON (Sent or NotSent), identical on a re-run.
                    context.OutputParameters["response"] = reader.ReadToEnd();
                }
            }
            catch (WebException ex)
            {
                // 409 (same request in progress), 503 (provider down), timeouts: fail this attempt so Journeys
                // runs another; the app is idempotent on RequestId/IdempotencyId and never sends twice.
                var status = (ex.Response as HttpWebResponse)?.StatusCode.ToString() ?? ex.Status.ToString();
                trace.Trace("ChannelRelay: relay failed: {0}", status);
                throw new InvalidPluginExecutionException("ChannelRelay: outbound relay failed (" + status + ").", ex);
            }
        }

        private static string ReadVariable(IOrganizationService service, string schemaSuffix)
        {
            var query = new QueryExpression("environmentvariabledefinition")
            {
                ColumnSet = new ColumnSet("schemaname", "defaultvalue", "type"),
                Criteria = { Conditions = { new ConditionExpression("schemaname", ConditionOperator.EndsWith, schemaSuffix) } },
            };
            var values = query.AddLink("environmentvariablevalue", "environmentvariabledefinitionid",
                "environmentvariabledefinitionid", JoinOperator.LeftOuter);
            values.Columns = new ColumnSet("value");
            values.EntityAlias = "v";
            var definition = service.RetrieveMultiple(query).Entities.FirstOrDefault()
                ?? throw new InvalidPluginExecutionException("ChannelRelay: environment variable *" + schemaSuffix + " is missing.");
            if (definition.GetAttributeValue<OptionSetValue>("type")?.Value == SecretType)
            {
                var secret = new OrganizationRequest("RetrieveEnvironmentVariableSecretValue")
                {
                    ["EnvironmentVariableName"] = definition.GetAttributeValue<string>("schemaname"),
                };
                return (string)service.Execute(secret).Results["EnvironmentVariableSecretValue"];
            }
            var value = definition.GetAttributeValue<AliasedValue>("v.value")?.Value as string;
            return string.IsNullOrWhiteSpace(value) ? definition.GetAttributeValue<string>("defaultvalue") : value;
        }
    }
}
