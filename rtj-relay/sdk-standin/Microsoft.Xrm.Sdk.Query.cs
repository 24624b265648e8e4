// Stand-in for the query types of Microsoft.Xrm.Sdk.Query the plug-in uses (see Microsoft.Xrm.Sdk.cs for the rules).
// Enum members carry the SDK's documented values; the plug-in only refers to them by name.
namespace Microsoft.Xrm.Sdk.Query
{
    public enum ConditionOperator
    {
        Equal = 0,
        NotEqual = 1,
        Like = 6,
        NotLike = 7,
        BeginsWith = 54,
        EndsWith = 56,
    }

    public enum JoinOperator
    {
        Inner = 0,
        LeftOuter = 1,
        Natural = 2,
    }

    public enum LogicalOperator
    {
        And = 0,
        Or = 1,
    }

    public abstract class QueryBase { }

    public sealed class ColumnSet
    {
        public ColumnSet() { Columns = new DataCollection<string>(); }
        public ColumnSet(params string[] columns) : this() { Columns.AddRange(columns); }

        public DataCollection<string> Columns { get; private set; }
        public bool AllColumns { get; set; }
    }

    public sealed class ConditionExpression
    {
        public ConditionExpression() { Values = new DataCollection<object>(); }

        public ConditionExpression(string attributeName, ConditionOperator conditionOperator, params object[] values)
            : this()
        {
            AttributeName = attributeName;
            Operator = conditionOperator;
            Values.AddRange(values);
        }

        public string AttributeName { get; set; }
        public ConditionOperator Operator { get; set; }
        public DataCollection<object> Values { get; private set; }
    }

    public sealed class FilterExpression
    {
        public FilterExpression() { Conditions = new DataCollection<ConditionExpression>(); }

        public LogicalOperator FilterOperator { get; set; }
        public DataCollection<ConditionExpression> Conditions { get; private set; }

        public void AddCondition(string attributeName, ConditionOperator conditionOperator, params object[] values)
        {
            Conditions.Add(new ConditionExpression(attributeName, conditionOperator, values));
        }
    }

    public sealed class LinkEntity
    {
        public LinkEntity() { Columns = new ColumnSet(); LinkCriteria = new FilterExpression(); }

        public string LinkFromEntityName { get; set; }
        public string LinkToEntityName { get; set; }
        public string LinkFromAttributeName { get; set; }
        public string LinkToAttributeName { get; set; }
        public JoinOperator JoinOperator { get; set; }
        public ColumnSet Columns { get; set; }
        public string EntityAlias { get; set; }
        public FilterExpression LinkCriteria { get; set; }
    }

    public sealed class QueryExpression : QueryBase
    {
        public QueryExpression()
        {
            ColumnSet = new ColumnSet();
            Criteria = new FilterExpression();
            LinkEntities = new DataCollection<LinkEntity>();
        }

        public QueryExpression(string entityName) : this() { EntityName = entityName; }

        public string EntityName { get; set; }
        public ColumnSet ColumnSet { get; set; }
        public FilterExpression Criteria { get; set; }
        public DataCollection<LinkEntity> LinkEntities { get; private set; }
        public int? TopCount { get; set; }

        public LinkEntity AddLink(string linkToEntityName, string linkFromAttributeName, string linkToAttributeName,
            JoinOperator joinOperator)
        {
            var link = new LinkEntity
            {
                LinkFromEntityName = EntityName,
                LinkToEntityName = linkToEntityName,
                LinkFromAttributeName = linkFromAttributeName,
                LinkToAttributeName = linkToAttributeName,
                JoinOperator = joinOperator,
            };
            LinkEntities.Add(link);
            return link;
        }
    }
}
