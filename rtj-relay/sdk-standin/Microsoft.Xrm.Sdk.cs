// Stand-in for the part of Microsoft.Xrm.Sdk (Microsoft.CrmSdk.CoreAssemblies) that ChannelRelayPlugin.cs uses, so
// CI can compile and run the plug-in under Mono. Written from Microsoft's documented API (learn.microsoft.com,
// "Microsoft.Xrm.Sdk Namespace"): same namespaces, type names, member names and signatures, so the same plug-in source
// builds against the real SDK unchanged. Only the members the plug-in and its test harness touch are declared; the
// behaviour is the minimum the harness needs (no serialization, no fault contracts). Never shipped.
using System;
using System.Collections.Generic;
using System.Collections.ObjectModel;

namespace Microsoft.Xrm.Sdk
{
    public interface IPlugin
    {
        void Execute(IServiceProvider serviceProvider);
    }

    // The real interface has many more members (UserId, Depth, PrimaryEntityName, …); OrganizationId is a Guid there.
    public interface IExecutionContext
    {
        string MessageName { get; }
        Guid OrganizationId { get; }
        ParameterCollection InputParameters { get; }
        ParameterCollection OutputParameters { get; }
    }

    public interface IPluginExecutionContext : IExecutionContext
    {
        int Stage { get; }
    }

    public interface ITracingService
    {
        void Trace(string format, params object[] args);
    }

    public interface IOrganizationServiceFactory
    {
        IOrganizationService CreateOrganizationService(Guid? userId);
    }

    // The real interface also has Create, Retrieve, Update, Delete, Execute, Associate and Disassociate.
    public interface IOrganizationService
    {
        EntityCollection RetrieveMultiple(Query.QueryBase query);
    }

    // Power Platform managed identity for plug-ins ("Set up managed identity for Power Platform").
    public interface IManagedIdentityService
    {
        string AcquireToken(IEnumerable<string> scopes);
    }

    // The real type derives from FaultException<OrganizationServiceFault>; the plug-in only constructs and throws it.
    public class InvalidPluginExecutionException : Exception
    {
        public InvalidPluginExecutionException(string message) : base(message) { }
        public InvalidPluginExecutionException(string message, Exception exception) : base(message, exception) { }
    }

    public class DataCollection<T> : Collection<T>
    {
        public void AddRange(params T[] items)
        {
            foreach (var item in items) Add(item);
        }
    }

    public abstract class DataCollection<TKey, TValue> : IEnumerable<KeyValuePair<TKey, TValue>>
    {
        private readonly Dictionary<TKey, TValue> _items = new Dictionary<TKey, TValue>();

        public TValue this[TKey key]
        {
            get { return _items[key]; }
            set { _items[key] = value; }
        }

        public int Count { get { return _items.Count; } }
        public bool Contains(TKey key) { return _items.ContainsKey(key); }
        public bool TryGetValue(TKey key, out TValue value) { return _items.TryGetValue(key, out value); }
        public void Add(TKey key, TValue value) { _items.Add(key, value); }
        public IEnumerator<KeyValuePair<TKey, TValue>> GetEnumerator() { return _items.GetEnumerator(); }
        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() { return GetEnumerator(); }
    }

    public sealed class ParameterCollection : DataCollection<string, object> { }

    public sealed class AttributeCollection : DataCollection<string, object> { }

    public class Entity
    {
        public Entity() { Attributes = new AttributeCollection(); }
        public Entity(string entityName) : this() { LogicalName = entityName; }

        public string LogicalName { get; set; }
        public Guid Id { get; set; }
        public AttributeCollection Attributes { get; set; }

        public object this[string attributeName]
        {
            get { return Attributes[attributeName]; }
            set { Attributes[attributeName] = value; }
        }

        public bool Contains(string attributeName) { return Attributes.Contains(attributeName); }

        public T GetAttributeValue<T>(string attributeLogicalName)
        {
            object value;
            if (!Attributes.TryGetValue(attributeLogicalName, out value) || value == null) return default(T);
            return (T)value;
        }
    }

    public sealed class EntityCollection
    {
        public EntityCollection() { Entities = new DataCollection<Entity>(); }
        public EntityCollection(IList<Entity> list) : this() { foreach (var e in list) Entities.Add(e); }

        public DataCollection<Entity> Entities { get; private set; }
        public bool MoreRecords { get; set; }
    }

    public sealed class AliasedValue
    {
        public AliasedValue(string entityLogicalName, string attributeLogicalName, object value)
        {
            EntityLogicalName = entityLogicalName;
            AttributeLogicalName = attributeLogicalName;
            Value = value;
        }

        public string EntityLogicalName { get; private set; }
        public string AttributeLogicalName { get; private set; }
        public object Value { get; private set; }
    }

    public sealed class OptionSetValue
    {
        public OptionSetValue(int value) { Value = value; }
        public int Value { get; set; }
    }
}
