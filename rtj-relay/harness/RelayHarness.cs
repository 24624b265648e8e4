// Test harness (CI only, never shipped): runs OutboundRelayPlugin.Execute under Mono with a fake IServiceProvider,
// plug-in context, tracing service, managed identity service and organization service. The organization service
// answers environmentvariabledefinition queries the way Dataverse does: rows in storage order (unordered for the
// caller), schemaname compared case-insensitively, and in Like/BeginsWith/EndsWith '_' is a one-character wildcard
// and '%' any run, so a suffix lookup such as EndsWith "_ChannelRelayUrl" also matches new_LegacyChannelRelayUrl.
//
// Usage: mono RelayHarness.exe --message cr123_ChannelOutbound --payload-file p.json
//          [--var NAME=VALUE] [--default NAME=VALUE] [--type NAME=INT] [--extra-value NAME=VALUE]
//          [--token TOKEN | --token-error MESSAGE] [--no-payload] [--organization-id GUID]
// (no --organization-id: the context's OrganizationId is Guid.Empty, which the plug-in refuses)
// Prints key=value lines: outcome (response | invalid_plugin_execution | other_exception), elapsed_ms, scopes,
// queries, and response_b64 / message_b64 / type.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;
using ChannelRelay;
using Microsoft.Xrm.Sdk;
using Microsoft.Xrm.Sdk.Query;

namespace RelayHarness
{
    internal sealed class Variable
    {
        public string SchemaName;
        public int Type = 100000000;
        public string DefaultValue;
        public List<string> Values = new List<string>();
    }

    internal sealed class Context : IPluginExecutionContext
    {
        private readonly ParameterCollection _input = new ParameterCollection();
        private readonly ParameterCollection _output = new ParameterCollection();
        public string Message;
        public Guid Organization = Guid.Empty;
        public string MessageName { get { return Message; } }
        public Guid OrganizationId { get { return Organization; } }
        public ParameterCollection InputParameters { get { return _input; } }
        public ParameterCollection OutputParameters { get { return _output; } }
        public int Stage { get { return 30; } }
    }

    internal sealed class Tracing : ITracingService
    {
        public readonly List<string> Lines = new List<string>();
        public void Trace(string format, params object[] args) { Lines.Add(string.Format(format, args)); }
    }

    internal sealed class Identity : IManagedIdentityService
    {
        public string Token;
        public string Error;
        public readonly List<string> Scopes = new List<string>();

        public string AcquireToken(IEnumerable<string> scopes)
        {
            Scopes.AddRange(scopes);
            if (Error != null) throw new InvalidOperationException(Error);
            return Token;
        }
    }

    internal sealed class Organization : IOrganizationService, IOrganizationServiceFactory
    {
        public readonly List<Variable> Variables = new List<Variable>();
        public readonly List<string> Queries = new List<string>();

        public IOrganizationService CreateOrganizationService(Guid? userId) { return this; }

        public EntityCollection RetrieveMultiple(QueryBase query)
        {
            var expression = query as QueryExpression;
            if (expression == null || expression.EntityName != "environmentvariabledefinition")
                throw new NotSupportedException("the harness only answers environmentvariabledefinition queries");
            var link = expression.LinkEntities.SingleOrDefault(l => l.LinkToEntityName == "environmentvariablevalue");
            foreach (var condition in expression.Criteria.Conditions)
                Queries.Add(condition.Operator + ":" + condition.Values[0]);
            var result = new EntityCollection();
            foreach (var variable in Variables)
            {
                if (!expression.Criteria.Conditions.All(c => Matches(c, variable))) continue;
                var values = variable.Values.Count == 0 || link == null ? new List<string> { null } : variable.Values;
                foreach (var value in values)
                {
                    var row = new Entity("environmentvariabledefinition");
                    row["schemaname"] = variable.SchemaName;
                    row["type"] = new OptionSetValue(variable.Type);
                    if (variable.DefaultValue != null) row["defaultvalue"] = variable.DefaultValue;
                    if (link != null && value != null)
                        row[link.EntityAlias + ".value"] = new AliasedValue("environmentvariablevalue", "value", value);
                    result.Entities.Add(row);
                }
            }
            return result;
        }

        private bool Matches(ConditionExpression condition, Variable variable)
        {
            if (condition.AttributeName != "schemaname")
                throw new NotSupportedException("condition on " + condition.AttributeName);
            var given = (string)condition.Values[0];
            var name = variable.SchemaName;
            switch (condition.Operator)
            {
                case ConditionOperator.Equal: return string.Equals(name, given, StringComparison.OrdinalIgnoreCase);
                case ConditionOperator.Like: return Like(name, given);
                case ConditionOperator.BeginsWith: return Like(name, given + "%");
                case ConditionOperator.EndsWith: return Like(name, "%" + given);
                default: throw new NotSupportedException("operator " + condition.Operator);
            }
        }

        private static bool Like(string value, string pattern)
        {
            var regex = "^" + Regex.Escape(pattern).Replace("%", ".*").Replace("_", ".") + "$";
            return Regex.IsMatch(value, regex, RegexOptions.IgnoreCase | RegexOptions.Singleline);
        }
    }

    internal sealed class Services : IServiceProvider
    {
        public Context Context;
        public Tracing Tracing;
        public Organization Organization;
        public Identity Identity;

        public object GetService(Type serviceType)
        {
            if (serviceType == typeof(IPluginExecutionContext)) return Context;
            if (serviceType == typeof(ITracingService)) return Tracing;
            if (serviceType == typeof(IOrganizationServiceFactory)) return Organization;
            if (serviceType == typeof(IManagedIdentityService)) return Identity;
            return null;
        }
    }

    internal static class Program
    {
        private static Variable Find(Organization organization, string name)
        {
            var variable = organization.Variables.FirstOrDefault(v => v.SchemaName == name);
            if (variable == null)
            {
                variable = new Variable { SchemaName = name };
                organization.Variables.Add(variable);
            }
            return variable;
        }

        private static void Emit(string key, string value) { Console.WriteLine(key + "=" + value); }

        private static string B64(string text) { return Convert.ToBase64String(Encoding.UTF8.GetBytes(text ?? "")); }

        public static int Main(string[] args)
        {
            var organization = new Organization();
            var services = new Services
            {
                Context = new Context(),
                Tracing = new Tracing(),
                Organization = organization,
            };
            string payloadFile = null;
            var withPayload = true;
            for (var i = 0; i < args.Length; i++)
            {
                var option = args[i];
                if (option == "--no-payload") { withPayload = false; continue; }
                var value = args[++i];
                var split = value.IndexOf('=');
                var name = split > 0 ? value.Substring(0, split) : value;
                var rest = split > 0 ? value.Substring(split + 1) : "";
                switch (option)
                {
                    case "--message": services.Context.Message = value; break;
                    case "--payload-file": payloadFile = value; break;
                    case "--organization-id":
                        if (!Guid.TryParse(value, out services.Context.Organization))
                        {
                            Console.Error.WriteLine("--organization-id: not a GUID: " + value);
                            return 64;
                        }
                        break;
                    case "--var": Find(organization, name).Values.Add(rest); break;
                    case "--extra-value": Find(organization, name).Values.Add(rest); break;
                    case "--default": Find(organization, name).DefaultValue = rest; break;
                    case "--type": Find(organization, name).Type = int.Parse(rest); break;
                    case "--token": services.Identity = services.Identity ?? new Identity(); services.Identity.Token = value; break;
                    case "--token-error": services.Identity = services.Identity ?? new Identity(); services.Identity.Error = value; break;
                    default: Console.Error.WriteLine("unknown option " + option); return 64;
                }
            }
            if (withPayload && payloadFile != null)
                services.Context.InputParameters["payload"] = File.ReadAllText(payloadFile, new UTF8Encoding(false));

            var clock = Stopwatch.StartNew();
            try
            {
                new OutboundRelayPlugin().Execute(services);
                Emit("outcome", "response");
                Emit("response_b64", B64((string)services.Context.OutputParameters["response"]));
            }
            catch (InvalidPluginExecutionException ex)
            {
                Emit("outcome", "invalid_plugin_execution");
                Emit("message_b64", B64(ex.Message));
            }
            catch (Exception ex)
            {
                Emit("outcome", "other_exception");
                Emit("type", ex.GetType().FullName);
                Emit("message_b64", B64(ex.Message));
            }
            Emit("elapsed_ms", clock.ElapsedMilliseconds.ToString());
            Emit("scopes", services.Identity == null ? "" : string.Join(" ", services.Identity.Scopes));
            Emit("queries", string.Join(" ", organization.Queries));
            Emit("trace_b64", B64(string.Join("\n", services.Tracing.Lines)));
            return 0;
        }
    }
}
