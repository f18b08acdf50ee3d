//! The documented examples of each function, from its Learn reference page (base
//! `https://learn.microsoft.com/azure/azure-resource-manager/templates/`), evaluated by the
//! importer's evaluator. A page's example output is the expected value.

use serde_json::{json, Value};

use crate::arm::eval::{DeployScope, Env, Loops};
use crate::arm::params::Provided;
use crate::arm::value::Val;

fn scope() -> DeployScope {
    DeployScope {
        subscription_id: "sub1".into(),
        resource_group: "rg1".into(),
        location: "westeurope".into(),
        defaulted: false,
    }
}

/// The lambda page's `dogs` variable, and the user-defined function page's `contoso` namespace.
fn doc() -> Value {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "functions": [{
            "namespace": "contoso",
            "members": {
                "uniqueName": {
                    "parameters": [{ "name": "namePrefix", "type": "string" }],
                    "output": { "type": "string",
                        "value": "[concat(toLower(parameters('namePrefix')), uniqueString(resourceGroup().id))]" }
                },
                "twice": {
                    "parameters": [{ "name": "x", "type": "int" }],
                    "output": { "type": "int", "value": "[mul(parameters('x'), 2)]" }
                }
            }
        }],
        "parameters": { "namePrefix": { "type": "string", "defaultValue": "OUTER" } },
        "variables": {
            "dogs": [
                { "name": "Evie", "age": 5, "interests": ["Ball", "Frisbee"] },
                { "name": "Casper", "age": 3, "interests": ["Other dogs"] },
                { "name": "Indy", "age": 2, "interests": ["Butter"] },
                { "name": "Kira", "age": 8, "interests": ["Rubs"] }
            ],
            "ages": "[map(variables('dogs'), lambda('dog', lambdaVariables('dog').age))]"
        },
        "resources": []
    })
}

fn eval(s: &str) -> Val {
    let d = doc();
    let sc = scope();
    let p = Provided::default();
    let env = Env::new("main.json", &d, &sc, &p);
    env.eval_string(s, "/x", &Loops::default())
}

fn ok(s: &str) -> Value {
    match eval(s) {
        Val::Failed(e) => panic!("`{s}` failed: {e}"),
        Val::Unknown(u) => panic!("`{s}` is unknown: {}", u.reason),
        v => v.to_json(),
    }
}

fn fails(s: &str) {
    assert!(matches!(eval(s), Val::Failed(_)), "`{s}` should fail");
}

// --- template-functions-lambda ---

#[test]
fn lambda_map_filter_reduce_sort_to_object() {
    // map: names, and the index form.
    assert_eq!(
        ok("[map(variables('dogs'), lambda('dog', lambdaVariables('dog').name))]"),
        json!(["Evie", "Casper", "Indy", "Kira"])
    );
    assert_eq!(
        ok("[map(variables('dogs'), lambda('dog', 'i', createObject('i', lambdaVariables('i'), 'dog', lambdaVariables('dog').name)))[1]]"),
        json!({ "i": 1, "dog": "Casper" })
    );
    // filter: dogs aged 5 and over; and range(0, 10) up to 3.
    assert_eq!(
        ok("[map(filter(variables('dogs'), lambda('dog', greaterOrEquals(lambdaVariables('dog').age, 5))), lambda('d', lambdaVariables('d').name))]"),
        json!(["Evie", "Kira"])
    );
    assert_eq!(
        ok("[filter(range(0, 10), lambda('i', lessOrEquals(lambdaVariables('i'), 3)))]"),
        json!([0, 1, 2, 3])
    );
    // reduce: the sum of the ages (18), and the object union example.
    assert_eq!(
        ok("[reduce(variables('ages'), 0, lambda('cur', 'next', add(lambdaVariables('cur'), lambdaVariables('next'))))]"),
        json!(18)
    );
    assert_eq!(
        ok("[reduce(createArray(createObject('foo', 123), createObject('bar', 456), createObject('baz', 789)), createObject(), lambda('cur', 'next', union(lambdaVariables('cur'), lambdaVariables('next'))))]"),
        json!({ "foo": 123, "bar": 456, "baz": 789 })
    );
    // sort: youngest first.
    assert_eq!(
        ok("[map(sort(variables('dogs'), lambda('a', 'b', less(lambdaVariables('a').age, lambdaVariables('b').age))), lambda('d', lambdaVariables('d').name))]"),
        json!(["Indy", "Casper", "Evie", "Kira"])
    );
    // toObject: keyed by name; with a value lambda.
    assert_eq!(
        ok("[toObject(variables('dogs'), lambda('entry', lambdaVariables('entry').name), lambda('entry', lambdaVariables('entry').age))]"),
        json!({ "Evie": 5, "Casper": 3, "Indy": 2, "Kira": 8 })
    );
    assert_eq!(
        ok("[toObject(variables('dogs'), lambda('entry', lambdaVariables('entry').name)).Kira.interests]"),
        json!(["Rubs"])
    );
    // mapValues and groupBy.
    assert_eq!(
        ok("[mapValues(createObject('foo', 'foo'), lambda('val', toUpper(lambdaVariables('val'))))]"),
        json!({ "foo": "FOO" })
    );
    assert_eq!(
        ok("[groupBy(createArray('foo', 'bar', 'baz'), lambda('x', substring(lambdaVariables('x'), 0, 1)))]"),
        json!({ "f": ["foo"], "b": ["bar", "baz"] })
    );
    // A lambda variable outside its lambda, or a lambda where a value is needed, is an error.
    fails("[lambdaVariables('dog')]");
    fails("[lambda('x', 1)]");
    fails("[map(variables('dogs'), 1)]");
    // An unknown array stays unknown.
    assert!(matches!(
        eval("[map(reference('x').arr, lambda('a', 1))]"),
        Val::Unknown(_)
    ));
}

#[test]
fn sort_never_needs_a_total_order() {
    // A lambda that is always true is not an order; the sort still ends with every element.
    let v = ok("[sort(range(0, 50), lambda('a', 'b', true()))]");
    assert_eq!(v.as_array().map(Vec::len), Some(50));
}

// --- user-defined-functions ---

#[test]
fn user_defined_functions_bind_their_parameters() {
    // Learn's example: concat(toLower(namePrefix), uniqueString(resourceGroup().id)); the
    // template's own `namePrefix` parameter is not what the function sees.
    let v = ok("[contoso.uniqueName('Storage')]");
    let s = v.as_str().expect("a string");
    assert!(
        s.starts_with("storage") && s.len() == "storage".len() + 13,
        "{s}"
    );
    assert_eq!(ok("[contoso.twice(contoso.twice(3))]"), json!(12));
    fails("[contoso.twice(1, 2)]");
}

// --- template-functions-object ---

#[test]
fn object_functions() {
    // tryGet: a missing key is null; null in, null out (Bicep's `.?`).
    assert_eq!(ok("[tryGet(createObject('a', 1), 'a')]"), json!(1));
    assert_eq!(ok("[tryGet(createObject('a', 1), 'b')]"), json!(null));
    assert_eq!(ok("[tryGet(null(), 'b')]"), json!(null));
    assert_eq!(
        ok("[tryGet(createObject('a', createObject('b', 2)), 'a', 'b')]"),
        json!(2)
    );
    assert_eq!(ok("[tryGet(createArray(1, 2), 1)]"), json!(2));
    // A known member of an object with an unknown one is known.
    assert_eq!(
        ok("[tryGet(createObject('a', 1, 'u', reference('x').y), 'a')]"),
        json!(1)
    );
    // items: sorted by key.
    assert_eq!(
        ok("[items(createObject('item002', createObject('enabled', false()), 'item001', createObject('enabled', true())))]"),
        json!([
            { "key": "item001", "value": { "enabled": true } },
            { "key": "item002", "value": { "enabled": false } }
        ])
    );
    assert_eq!(
        ok("[objectKeys(createObject('a', 1, 'b', 2))]"),
        json!(["a", "b"])
    );
    // shallowMerge: later wins, nested objects are replaced, not merged.
    assert_eq!(
        ok("[shallowMerge(createArray(createObject('one', 'a'), createObject('two', 'b'), createObject('two', 'c')))]"),
        json!({ "one": "a", "two": "c" })
    );
    assert_eq!(
        ok("[shallowMerge(createArray(createObject('one', 'a', 'nested', createObject('a', 1)), createObject('two', 'b', 'nested', createObject('b', 2))))]"),
        json!({ "one": "a", "nested": { "b": 2 }, "two": "b" })
    );
    assert_eq!(ok("[null()]"), json!(null));
    assert_eq!(ok("[empty(null())]"), json!(true));
    assert_eq!(
        ok("[intersection(createObject('one', 'a', 'two', 'b'), createObject('one', 'a', 'two', 'z'))]"),
        json!({ "one": "a" })
    );
}

// --- template-functions-array ---

#[test]
fn array_functions() {
    assert_eq!(
        ok("[flatten(createArray(createArray('one', 'two'), createArray('three'), createArray('four', 'five')))]"),
        json!(["one", "two", "three", "four", "five"])
    );
    assert_eq!(ok("[range(5, 3)]"), json!([5, 6, 7]));
    fails("[range(0, 10001)]");
    assert_eq!(
        ok("[take(createArray('one', 'two', 'three'), 2)]"),
        json!(["one", "two"])
    );
    assert_eq!(ok("[take('one two three', 2)]"), json!("on"));
    assert_eq!(
        ok("[skip(createArray('one', 'two', 'three'), 2)]"),
        json!(["three"])
    );
    assert_eq!(ok("[skip('one two three', 4)]"), json!("two three"));
    assert_eq!(ok("[take(createArray(1), 5)]"), json!([1]));
    assert_eq!(ok("[skip(createArray(1), -1)]"), json!([1]));
    assert_eq!(
        ok("[indexOf(createArray('one', 'two', 'three'), 'two')]"),
        json!(1)
    );
    assert_eq!(ok("[indexOf(createArray(1, 2, 3), 4)]"), json!(-1));
    assert_eq!(
        ok("[lastIndexOf(createArray('a', 'b', 'a'), 'a')]"),
        json!(2)
    );
    assert_eq!(ok("[array(1)]"), json!([1]));
    assert_eq!(ok("[array('efgh')]"), json!(["efgh"]));
    assert_eq!(ok("[array(createObject('a', 'b'))]"), json!([{ "a": "b" }]));
    assert_eq!(ok("[array(createArray(1))]"), json!([1]));
    assert_eq!(ok("[first(createArray('one', 'two'))]"), json!("one"));
    assert_eq!(
        ok("[tryIndexFromEnd(createArray('a', 'b', 'c'), 1)]"),
        json!("c")
    );
    assert_eq!(ok("[tryIndexFromEnd(createArray('a'), 3)]"), json!(null));
    assert_eq!(
        ok("[intersection(createArray('one', 'two', 'three'), createArray('two', 'three'))]"),
        json!(["two", "three"])
    );
    assert_eq!(ok("[min(createArray(0, 3, 2, 5, 4))]"), json!(0));
    assert_eq!(ok("[max(0, 3, 2, 5, 4)]"), json!(5));
}

// --- template-functions-string ---

#[test]
fn string_functions() {
    assert_eq!(
        ok("[join(createArray('one', 'two', 'three'), ',')]"),
        json!("one,two,three")
    );
    assert_eq!(
        ok("[join(createArray('one', 'two', 'three'), ';')]"),
        json!("one;two;three")
    );
    assert_eq!(
        ok("[replace('123-123-1234', '-', '')]"),
        json!("1231231234")
    );
    assert_eq!(
        ok("[replace('123-123-1234', '1234', 'xxxx')]"),
        json!("123-123-xxxx")
    );
    assert_eq!(ok("[substring('one two three', 4, 3)]"), json!("two"));
    fails("[substring('one', 2, 5)]");
    assert_eq!(
        ok("[string(createObject('valueA', 10, 'valueB', 'Example Text'))]"),
        json!("{\"valueA\":10,\"valueB\":\"Example Text\"}")
    );
    assert_eq!(
        ok("[string(createArray('a', 'b', 'c'))]"),
        json!("[\"a\",\"b\",\"c\"]")
    );
    assert_eq!(ok("[string(5)]"), json!("5"));
    // indexOf / lastIndexOf on strings are case-insensitive.
    assert_eq!(ok("[indexOf('test', 't')]"), json!(0));
    assert_eq!(ok("[lastIndexOf('test', 't')]"), json!(3));
    assert_eq!(ok("[indexOf('abcdef', 'CD')]"), json!(2));
    assert_eq!(ok("[lastIndexOf('abcdef', 'AB')]"), json!(0));
    assert_eq!(ok("[indexOf('abcdef', 'z')]"), json!(-1));
    assert_eq!(ok("[startsWith('abcdef', 'ab')]"), json!(true));
    assert_eq!(ok("[startsWith('abcdef', 'A')]"), json!(true));
    assert_eq!(ok("[endsWith('abcdef', 'e')]"), json!(false));
    assert_eq!(ok("[trim('    one two three   ')]"), json!("one two three"));
    assert_eq!(ok("[padLeft('123', 10, '0')]"), json!("0000000123"));
    // guid: deterministic and shaped like a GUID; newGuid too (as uniqueString is).
    let g = ok("[guid('a', 'b')]");
    let g = g.as_str().expect("a string");
    assert_eq!(g.len(), 36);
    assert_eq!(g.matches('-').count(), 4);
    assert_eq!(ok("[guid('a', 'b')]"), json!(g));
    assert_ne!(ok("[guid('a', 'c')]"), json!(g));
    assert_eq!(ok("[newGuid()]"), ok("[newGuid()]"));
}

// --- template-functions-logical / comparison / numeric ---

#[test]
fn logical_comparison_numeric() {
    assert_eq!(ok("[true()]"), json!(true));
    assert_eq!(ok("[false()]"), json!(false));
    assert_eq!(ok("[bool('true')]"), json!(true));
    assert_eq!(ok("[bool(0)]"), json!(false));
    assert_eq!(ok("[int('4')]"), json!(4));
    assert_eq!(ok("[greater(10, 5)]"), json!(true));
    assert_eq!(ok("[greater('A', 'a')]"), json!(false));
    assert_eq!(ok("[lessOrEquals(5, 5)]"), json!(true));
    assert_eq!(ok("[add(5, 3)]"), json!(8));
    assert_eq!(ok("[sub(7, 3)]"), json!(4));
    assert_eq!(ok("[mul(5, 3)]"), json!(15));
    assert_eq!(ok("[div(8, 3)]"), json!(2));
    assert_eq!(ok("[mod(7, 3)]"), json!(1));
    fails("[div(1, 0)]");
}

// --- template-functions-cidr ---

#[test]
fn cidr_functions() {
    assert_eq!(
        ok("[parseCidr('10.144.0.0/20')]"),
        json!({
            "network": "10.144.0.0", "netmask": "255.255.240.0", "broadcast": "10.144.15.255",
            "firstUsable": "10.144.0.1", "lastUsable": "10.144.15.254", "cidr": 20
        })
    );
    assert_eq!(
        ok("[parseCidr('fdad:3236:5555::/48')]"),
        json!({
            "network": "fdad:3236:5555::", "netmask": "ffff:ffff:ffff::",
            "firstUsable": "fdad:3236:5555::", "lastUsable": "fdad:3236:5555:ffff:ffff:ffff:ffff:ffff",
            "cidr": 48
        })
    );
    assert_eq!(
        ok("[map(range(0, 5), lambda('i', cidrHost('10.144.3.0/24', lambdaVariables('i'))))]"),
        json!([
            "10.144.3.1",
            "10.144.3.2",
            "10.144.3.3",
            "10.144.3.4",
            "10.144.3.5"
        ])
    );
    fails("[cidrHost('10.144.3.0/24', 254)]");
    assert_eq!(
        ok("[cidrHost('10.144.3.0/24', 253)]"),
        json!("10.144.3.254")
    );
}

// --- template-functions-deployment ---

#[test]
fn deployment_and_environment() {
    // environment(): the public cloud; its suffixes build privatelink zone names.
    assert_eq!(ok("[environment().name]"), json!("AzureCloud"));
    assert_eq!(
        ok("[format('privatelink{0}', environment().suffixes.keyvaultDns)]"),
        json!("privatelink.vault.azure.net")
    );
    assert_eq!(
        ok("[environment().suffixes.storage]"),
        json!("core.windows.net")
    );
    // deployment().name: the template file's name without extension (az's default).
    assert_eq!(ok("[deployment().name]"), json!("main"));
    assert_eq!(ok("[deployment().properties.mode]"), json!("Incremental"));
}
